/* stub: being written */
typedef int lb_stub_pointwise_t;
