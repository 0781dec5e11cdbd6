/* Hand-written helpers for what bindgen cannot reach: the thread-local rte_errno
 * (a __thread variable that bindgen turns into a plain static) and function-like
 * macros. Each one is tested against the real macro in tests/shims.rs. */
#ifndef DPDK_SYS_SHIM_H
#define DPDK_SYS_SHIM_H

#include <stdint.h>
#include <rte_mbuf.h>

/* Value of rte_errno for the calling thread. */
int dpdk_sys_rte_errno(void);
/* Sets rte_errno for the calling thread (tests use it to check the getter). */
void dpdk_sys_set_rte_errno(int value);
/* rte_pktmbuf_mtod(m, void *): start of the packet data in the first segment. */
void *dpdk_sys_pktmbuf_mtod(struct rte_mbuf *m);
/* rte_pktmbuf_pkt_len(m). */
uint32_t dpdk_sys_pktmbuf_pkt_len(const struct rte_mbuf *m);
/* rte_pktmbuf_data_len(m). */
uint16_t dpdk_sys_pktmbuf_data_len(const struct rte_mbuf *m);
/* Takes `count` mbufs from `pool` as single-segment packets of `len` bytes at the
 * default headroom, all or none: rte_mempool_get_bulk, then only the fields a
 * packet to send needs (rte_pktmbuf_alloc_bulk also clears offload and VLAN
 * fields, at two cache lines per mbuf). The caller checks that `len` fits the
 * pool's data room. Returns 0, or a negative errno when the pool is short. */
int dpdk_sys_pktmbuf_alloc_bulk_sized(struct rte_mempool *pool, struct rte_mbuf **mbufs,
                                      unsigned int count, uint16_t len);
/* Frees `count` mbufs, as rte_pktmbuf_free_bulk does. When every one is a direct,
 * unshared, single-segment mbuf of the first one's pool (what a receive burst
 * holds), they go back to the pool in one rte_mempool_put_bulk without being
 * gathered into a staging array; anything else takes rte_pktmbuf_free_bulk. */
void dpdk_sys_pktmbuf_free_burst(struct rte_mbuf **mbufs, unsigned int count);
/* RTE_MBUF_DEFAULT_BUF_SIZE: data room for a default mbuf (2048 + headroom). */
uint16_t dpdk_sys_mbuf_default_buf_size(void);
/* RTE_PKTMBUF_HEADROOM. */
uint16_t dpdk_sys_pktmbuf_headroom(void);
/* Sends DPDK's log to stderr (it defaults to stdout, which would mix with a
 * program's output). Call before rte_eal_init. Returns rte_openlog_stream's result. */
int dpdk_sys_log_to_stderr(void);
/* RTE_MAX_ETHPORTS. */
uint16_t dpdk_sys_max_ethports(void);
/* RTE_ETH_NAME_MAX_LEN. */
uint16_t dpdk_sys_eth_name_max_len(void);

#endif
