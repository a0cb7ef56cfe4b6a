/* stub */
#ifndef LB_QUANT_H
#define LB_QUANT_H
#endif
