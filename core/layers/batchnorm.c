/* stub: being written */
typedef int lb_stub_batchnorm_t;
