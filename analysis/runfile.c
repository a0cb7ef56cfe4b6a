/* stub: being written */
typedef int lb_stub_runfile_t;
