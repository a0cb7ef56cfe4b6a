/* stub: being written */
typedef int lb_stub_idx_t;
