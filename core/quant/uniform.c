/* stub: being written */
typedef int lb_stub_uniform_t;
