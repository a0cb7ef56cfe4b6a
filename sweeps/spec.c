/* stub: being written */
typedef int lb_stub_spec_t;
