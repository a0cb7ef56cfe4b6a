/* stub */
#ifndef LB_RQ_H
#define LB_RQ_H
#endif
