/* stub: being written */
typedef int lb_stub_pool_t;
