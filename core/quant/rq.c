/* stub: being written */
typedef int lb_stub_rq_t;
