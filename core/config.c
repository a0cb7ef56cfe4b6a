/* stub: being written */
typedef int lb_stub_config_t;
