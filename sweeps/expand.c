/* stub: being written */
typedef int lb_stub_expand_t;
