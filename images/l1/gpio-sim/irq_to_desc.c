// SPDX-License-Identifier: GPL-2.0
/*
 * irq_to_desc() for irq_sim.c built as a module (see Kbuild): the kernel does
 * not export irq_to_desc(), but it does export irq_get_irq_data(), which
 * returns &irq_to_desc(irq)->irq_data (or NULL), and irq_data_to_desc() is
 * a header inline that maps that back to its struct irq_desc.
 */
#include <linux/irq.h>
#include <linux/irqdesc.h>

struct irq_desc *gvmm_irq_to_desc(unsigned int irq);

struct irq_desc *gvmm_irq_to_desc(unsigned int irq)
{
	struct irq_data *data = irq_get_irq_data(irq);

	return data ? irq_data_to_desc(data) : NULL;
}
