/* stub: being written */
typedef int lb_stub_dropout_t;
