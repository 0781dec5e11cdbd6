#include <rte_errno.h>
#include <stdio.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include "shim.h"

int dpdk_sys_rte_errno(void) { return rte_errno; }

void dpdk_sys_set_rte_errno(int value) { rte_errno = value; }

void *dpdk_sys_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint32_t dpdk_sys_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }

uint16_t dpdk_sys_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }

int dpdk_sys_pktmbuf_alloc_bulk_sized(struct rte_mempool *pool, struct rte_mbuf **mbufs,
                                      unsigned int count, uint16_t len)
{
    int rc = rte_mempool_get_bulk(pool, (void **)mbufs, count);
    if (unlikely(rc != 0))
        return rc;
    /* What rte_mbuf_raw_alloc leaves to the caller, for a packet that carries no
     * offload request (ol_flags clear, so PMDs ignore tx_offload and VLAN tags).
     * refcnt, nb_segs = 1 and next = NULL hold for every mbuf in a pool. */
    for (unsigned int i = 0; i < count; i++) {
        struct rte_mbuf *m = mbufs[i];
        __rte_mbuf_raw_sanity_check(m);
        rte_pktmbuf_reset_headroom(m);
        m->ol_flags &= RTE_MBUF_F_EXTERNAL;
        m->packet_type = 0;
        m->port = RTE_MBUF_PORT_INVALID;
        m->data_len = len;
        m->pkt_len = len;
    }
    return 0;
}

void dpdk_sys_pktmbuf_free_burst(struct rte_mbuf **mbufs, unsigned int count)
{
    if (count == 0)
        return;
    struct rte_mempool *pool = mbufs[0]->pool;
    for (unsigned int i = 0; i < count; i++) {
        const struct rte_mbuf *m = mbufs[i];
        /* What rte_pktmbuf_prefree_seg would find nothing to do for. */
        if (unlikely(m->pool != pool || rte_mbuf_refcnt_read(m) != 1 || !RTE_MBUF_DIRECT(m) ||
                     m->next != NULL || m->nb_segs != 1)) {
            rte_pktmbuf_free_bulk(mbufs, count);
            return;
        }
    }
    rte_mempool_put_bulk(pool, (void **)mbufs, count);
}

uint16_t dpdk_sys_mbuf_default_buf_size(void) { return RTE_MBUF_DEFAULT_BUF_SIZE; }

uint16_t dpdk_sys_pktmbuf_headroom(void) { return RTE_PKTMBUF_HEADROOM; }

uint16_t dpdk_sys_max_ethports(void) { return RTE_MAX_ETHPORTS; }

uint16_t dpdk_sys_eth_name_max_len(void) { return RTE_ETH_NAME_MAX_LEN; }

int dpdk_sys_log_to_stderr(void) { return rte_openlog_stream(stderr); }
