/* stub: being written */
typedef int lb_stub_dataset_t;
