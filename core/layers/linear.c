/* stub: being written */
typedef int lb_stub_linear_t;
