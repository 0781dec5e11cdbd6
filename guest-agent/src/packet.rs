//! Frames the agent sends and understands: Ethernet II, IPv4, UDP with a test payload
//! header, and ARP for IPv4. Building writes valid IPv4 and UDP checksums; parsing
//! checks lengths and checksums and rejects malformed or truncated frames with an
//! error, never a panic.
//!
//! Test traffic is UDP from port [`TEST_UDP_PORT`] to [`TEST_UDP_PORT`] (9, "discard"),
//! so a stray capture of the link shows nothing that a host would act on.

use std::net::Ipv4Addr;

/// An Ethernet MAC address.
pub type MacAddr = [u8; 6];

/// The broadcast MAC address.
pub const BROADCAST_MAC: MacAddr = [0xff; 6];

/// Ethernet II header length.
pub const ETH_HEADER_LEN: usize = 14;
/// IPv4 header length without options (the only kind we build).
pub const IPV4_HEADER_LEN: usize = 20;
/// UDP header length.
pub const UDP_HEADER_LEN: usize = 8;
/// Ethernet + IPv4 + UDP headers.
pub const UDP_FRAME_OVERHEAD: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// Length of the test payload header (magic, sequence number, timestamp).
pub const PAYLOAD_HEADER_LEN: usize = 20;
/// Smallest test frame (without FCS): the Ethernet minimum.
pub const MIN_FRAME_SIZE: u16 = 64;
/// Largest test frame (without FCS) for a 1500-byte MTU.
pub const MAX_FRAME_SIZE: u16 = 1514;
/// Ethernet payload of an ARP packet for IPv4.
pub const ARP_LEN: usize = 28;
/// Minimum Ethernet frame without FCS: shorter frames are padded to it.
pub const ETH_MIN_FRAME: usize = 60;
/// UDP source and destination port of test traffic.
pub const TEST_UDP_PORT: u16 = 9;
/// UDP destination port of a latency probe sent alongside a bench's load (echo): the
/// receiver returns it with addresses and ports swapped.
pub const PROBE_UDP_PORT: u16 = 7;
/// UDP source port of a latency probe, so that the returned probe (to this port) is
/// told apart from the load and from probes still on their way out.
pub const PROBE_SOURCE_PORT: u16 = 49_207;
/// First four bytes of every test payload: "DPKH".
pub const PAYLOAD_MAGIC: u32 = 0x4450_4b48;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
const IP_PROTO_UDP: u8 = 17;
const IP_PROTO_ICMP: u8 = 1;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
/// ICMP echo header: type, code, checksum, identifier, sequence number.
const ICMP_ECHO_HEADER_LEN: usize = 8;
/// IPv4 TTL of every frame the agent builds.
pub const DEFAULT_TTL: u8 = 64;

/// Why a frame could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The frame ends before a header or declared length does.
    #[error("{layer} truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// Which part was cut short.
        layer: &'static str,
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Not IPv4 (version field).
    #[error("IP version {0}, expected 4")]
    IpVersion(u8),
    /// IHL below 5 words.
    #[error("IPv4 header length {0} bytes is below 20")]
    IpHeaderLength(usize),
    /// IPv4 total length smaller than the header.
    #[error("IPv4 total length {total} is smaller than its header ({header})")]
    IpTotalLength {
        /// Declared total length.
        total: usize,
        /// Header length.
        header: usize,
    },
    /// A fragment: the agent does not reassemble.
    #[error("IPv4 fragment (offset {offset}, more fragments {more})")]
    Fragment {
        /// Fragment offset in 8-byte units.
        offset: u16,
        /// MF flag.
        more: bool,
    },
    /// IPv4 header checksum mismatch.
    #[error("IPv4 header checksum is wrong")]
    IpChecksum,
    /// UDP length field inconsistent with the IP payload.
    #[error("UDP length {udp} does not fit the IPv4 payload of {ip_payload} bytes")]
    UdpLength {
        /// Declared UDP length.
        udp: usize,
        /// IPv4 payload length.
        ip_payload: usize,
    },
    /// UDP checksum mismatch.
    #[error("UDP checksum is wrong")]
    UdpChecksum,
    /// ARP for something other than IPv4 over Ethernet.
    #[error("ARP for hardware type {htype} / protocol {ptype:#06x} is not supported")]
    ArpKind {
        /// Hardware type.
        htype: u16,
        /// Protocol type.
        ptype: u16,
    },
    /// ARP opcode other than request (1) or reply (2).
    #[error("ARP opcode {0} is neither request nor reply")]
    ArpOpcode(u16),
    /// ICMP checksum mismatch.
    #[error("ICMP checksum is wrong")]
    IcmpChecksum,
    /// A UDP frame was expected.
    #[error("frame is not IPv4/UDP")]
    NotUdp,
    /// Payload without our magic number.
    #[error("payload magic {0:#010x} is not a dpdk-agent test payload")]
    PayloadMagic(u32),
    /// A frame size outside what can be built.
    #[error("frame size {size} is outside {min}..={max}")]
    FrameSize {
        /// Size asked for.
        size: usize,
        /// Smallest allowed.
        min: usize,
        /// Largest allowed.
        max: usize,
    },
}

fn truncated(layer: &'static str, needed: usize, available: usize) -> PacketError {
    PacketError::Truncated {
        layer,
        needed,
        available,
    }
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn ip_at(bytes: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3])
}

fn mac_at(bytes: &[u8], at: usize) -> MacAddr {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[at..at + 6]);
    mac
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &MacAddr) -> String {
    agent_proto::MacAddr(*mac).to_string()
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-` between the bytes), as agent-proto does.
pub fn parse_mac(text: &str) -> Result<MacAddr, String> {
    text.parse::<agent_proto::MacAddr>()
        .map(|mac| mac.0)
        .map_err(|error| error.to_string())
}

/// One's-complement sum of `bytes` as big-endian 16-bit words (odd byte padded).
fn ones_complement_sum(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for word in &mut chunks {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop leaves at most 16 bits.
    u16::try_from(sum).unwrap_or(u16::MAX)
}

/// The Internet checksum (RFC 1071) of an IPv4 header whose checksum field is zero;
/// over a header with its checksum filled in, it is 0 when the checksum is right.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    !fold(ones_complement_sum(0, header))
}

/// The UDP checksum over the IPv4 pseudo-header and `udp` (header + payload) whose
/// checksum field is zero; 0 is sent as 0xffff, since 0 means "no checksum".
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let checksum = !fold(udp_sum(src, dst, udp));
    if checksum == 0 {
        0xffff
    } else {
        checksum
    }
}

fn udp_sum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u32 {
    let mut sum = ones_complement_sum(0, &src.octets());
    sum = ones_complement_sum(sum, &dst.octets());
    sum += u32::from(IP_PROTO_UDP);
    // UDP length fits 16 bits in any frame we accept (<= 64 KiB - IP header).
    sum += u32::try_from(udp.len()).unwrap_or(u32::MAX) & 0xffff;
    ones_complement_sum(sum, udp)
}

/// The Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Destination MAC.
    pub dst: MacAddr,
    /// Source MAC.
    pub src: MacAddr,
    /// EtherType.
    pub ethertype: u16,
}

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// Who has `target_ip`?
    Request,
    /// `sender_ip` is at `sender_mac`.
    Reply,
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in requests).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// A parsed IPv4/UDP frame, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrame<'a> {
    /// Ethernet header.
    pub eth: EthernetHeader,
    /// IPv4 source.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination.
    pub dst_ip: Ipv4Addr,
    /// IPv4 TTL.
    pub ttl: u8,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// UDP payload.
    pub payload: &'a [u8],
}

/// Any frame the agent can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// ARP for IPv4.
    Arp {
        /// Ethernet header.
        eth: EthernetHeader,
        /// The ARP packet.
        arp: ArpPacket,
    },
    /// IPv4 UDP.
    Udp(UdpFrame<'a>),
    /// Valid Ethernet, but nothing we handle (other EtherType or IP protocol).
    Other {
        /// Ethernet header.
        eth: EthernetHeader,
    },
}

/// The test payload header: magic, sequence number and send timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadHeader {
    /// Sequence number, from 0 per run.
    pub seq: u64,
    /// Send time in TSC-derived nanoseconds (see [`crate::eal::now_ns`]).
    pub tx_ns: u64,
}

impl PayloadHeader {
    /// Writes the header at the start of `payload` (which must hold 20 bytes).
    pub fn write(&self, payload: &mut [u8]) -> Result<(), PacketError> {
        let available = payload.len();
        let out = payload
            .get_mut(..PAYLOAD_HEADER_LEN)
            .ok_or_else(|| truncated("payload header", PAYLOAD_HEADER_LEN, available))?;
        out[0..4].copy_from_slice(&PAYLOAD_MAGIC.to_be_bytes());
        out[4..12].copy_from_slice(&self.seq.to_be_bytes());
        out[12..20].copy_from_slice(&self.tx_ns.to_be_bytes());
        Ok(())
    }

    /// Reads a header from the start of a UDP payload.
    pub fn parse(payload: &[u8]) -> Result<PayloadHeader, PacketError> {
        let bytes = payload
            .get(..PAYLOAD_HEADER_LEN)
            .ok_or_else(|| truncated("payload header", PAYLOAD_HEADER_LEN, payload.len()))?;
        let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != PAYLOAD_MAGIC {
            return Err(PacketError::PayloadMagic(magic));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[4..12]);
        let mut tx_ns = [0u8; 8];
        tx_ns.copy_from_slice(&bytes[12..20]);
        Ok(PayloadHeader {
            seq: u64::from_be_bytes(seq),
            tx_ns: u64::from_be_bytes(tx_ns),
        })
    }
}

fn parse_ethernet(frame: &[u8]) -> Result<EthernetHeader, PacketError> {
    if frame.len() < ETH_HEADER_LEN {
        return Err(truncated("Ethernet header", ETH_HEADER_LEN, frame.len()));
    }
    Ok(EthernetHeader {
        dst: mac_at(frame, 0),
        src: mac_at(frame, 6),
        ethertype: be16(frame, 12),
    })
}

/// Parses a frame, validating every header it understands (lengths, IPv4 and UDP
/// checksums). Trailing Ethernet padding beyond the IPv4 total length is ignored.
pub fn parse(frame: &[u8]) -> Result<Frame<'_>, PacketError> {
    let eth = parse_ethernet(frame)?;
    let l3 = &frame[ETH_HEADER_LEN..];
    match eth.ethertype {
        ETHERTYPE_ARP => Ok(Frame::Arp {
            eth,
            arp: parse_arp(l3)?,
        }),
        ETHERTYPE_IPV4 => parse_ipv4(eth, l3),
        _ => Ok(Frame::Other { eth }),
    }
}

fn parse_arp(l3: &[u8]) -> Result<ArpPacket, PacketError> {
    if l3.len() < ARP_LEN {
        return Err(truncated("ARP packet", ARP_LEN, l3.len()));
    }
    let (htype, ptype) = (be16(l3, 0), be16(l3, 2));
    if htype != 1 || ptype != ETHERTYPE_IPV4 || l3[4] != 6 || l3[5] != 4 {
        return Err(PacketError::ArpKind { htype, ptype });
    }
    let op = match be16(l3, 6) {
        1 => ArpOp::Request,
        2 => ArpOp::Reply,
        other => return Err(PacketError::ArpOpcode(other)),
    };
    Ok(ArpPacket {
        op,
        sender_mac: mac_at(l3, 8),
        sender_ip: ip_at(l3, 14),
        target_mac: mac_at(l3, 18),
        target_ip: ip_at(l3, 24),
    })
}

fn parse_ipv4(eth: EthernetHeader, l3: &[u8]) -> Result<Frame<'_>, PacketError> {
    if l3.len() < IPV4_HEADER_LEN {
        return Err(truncated("IPv4 header", IPV4_HEADER_LEN, l3.len()));
    }
    let version = l3[0] >> 4;
    if version != 4 {
        return Err(PacketError::IpVersion(version));
    }
    let header_len = usize::from(l3[0] & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN {
        return Err(PacketError::IpHeaderLength(header_len));
    }
    let total = usize::from(be16(l3, 2));
    if total < header_len {
        return Err(PacketError::IpTotalLength {
            total,
            header: header_len,
        });
    }
    if l3.len() < total {
        return Err(truncated("IPv4 packet", total, l3.len()));
    }
    if ipv4_checksum(&l3[..header_len]) != 0 {
        return Err(PacketError::IpChecksum);
    }
    let flags_fragment = be16(l3, 6);
    let offset = flags_fragment & 0x1fff;
    let more = flags_fragment & 0x2000 != 0;
    if offset != 0 || more {
        return Err(PacketError::Fragment { offset, more });
    }
    if l3[9] != IP_PROTO_UDP {
        return Ok(Frame::Other { eth });
    }
    let src_ip = ip_at(l3, 12);
    let dst_ip = ip_at(l3, 16);
    let ip_payload = &l3[header_len..total];
    if ip_payload.len() < UDP_HEADER_LEN {
        return Err(truncated("UDP header", UDP_HEADER_LEN, ip_payload.len()));
    }
    let udp_len = usize::from(be16(ip_payload, 4));
    if udp_len < UDP_HEADER_LEN || udp_len > ip_payload.len() {
        return Err(PacketError::UdpLength {
            udp: udp_len,
            ip_payload: ip_payload.len(),
        });
    }
    let udp = &ip_payload[..udp_len];
    // A zero checksum means the sender did not compute one (allowed for IPv4).
    if be16(udp, 6) != 0 && fold(udp_sum(src_ip, dst_ip, udp)) != 0xffff {
        return Err(PacketError::UdpChecksum);
    }
    Ok(Frame::Udp(UdpFrame {
        eth,
        src_ip,
        dst_ip,
        ttl: l3[8],
        src_port: be16(udp, 0),
        dst_port: be16(udp, 2),
        payload: &udp[UDP_HEADER_LEN..],
    }))
}

/// Addresses of a test UDP frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEndpoints {
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source IP.
    pub src_ip: Ipv4Addr,
    /// Destination IP.
    pub dst_ip: Ipv4Addr,
    /// Source UDP port.
    pub src_port: u16,
    /// Destination UDP port.
    pub dst_port: u16,
}

/// Checks that `size` is a frame size test traffic can use.
pub fn check_frame_size(size: usize) -> Result<(), PacketError> {
    let (min, max) = (usize::from(MIN_FRAME_SIZE), usize::from(MAX_FRAME_SIZE));
    if (min..=max).contains(&size) {
        Ok(())
    } else {
        Err(PacketError::FrameSize { size, min, max })
    }
}

/// Writes a whole IPv4/UDP frame filling `frame` (64..=1514 bytes): headers with
/// valid checksums, then `header` at the start of the UDP payload and a fixed fill
/// pattern after it.
pub fn build_udp(
    frame: &mut [u8],
    endpoints: &UdpEndpoints,
    header: &PayloadHeader,
) -> Result<(), PacketError> {
    check_frame_size(frame.len())?;
    write_udp_headers(frame, endpoints)?;
    let payload = &mut frame[UDP_FRAME_OVERHEAD..];
    for (index, byte) in payload.iter_mut().enumerate() {
        // Low byte of the index: a recognisable, deterministic fill.
        *byte = index.to_le_bytes()[0];
    }
    header.write(payload)?;
    finish_udp_checksum(frame);
    Ok(())
}

/// Writes Ethernet, IPv4 and UDP headers for a frame of `frame.len()` bytes, with the
/// IPv4 checksum set and the UDP checksum zeroed (see [`finish_udp_checksum`]).
fn write_udp_headers(frame: &mut [u8], endpoints: &UdpEndpoints) -> Result<(), PacketError> {
    if frame.len() < UDP_FRAME_OVERHEAD {
        return Err(truncated("UDP frame", UDP_FRAME_OVERHEAD, frame.len()));
    }
    let ip_total =
        u16::try_from(frame.len() - ETH_HEADER_LEN).map_err(|_| PacketError::FrameSize {
            size: frame.len(),
            min: usize::from(MIN_FRAME_SIZE),
            max: usize::from(MAX_FRAME_SIZE),
        })?;
    let udp_len = ip_total - 20;
    frame[0..6].copy_from_slice(&endpoints.dst_mac);
    frame[6..12].copy_from_slice(&endpoints.src_mac);
    frame[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip = &mut frame[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV4_HEADER_LEN];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&ip_total.to_be_bytes());
    ip[4..6].copy_from_slice(&0u16.to_be_bytes());
    // Don't Fragment: test frames always fit the MTU.
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = DEFAULT_TTL;
    ip[9] = IP_PROTO_UDP;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&endpoints.src_ip.octets());
    ip[16..20].copy_from_slice(&endpoints.dst_ip.octets());
    let checksum = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let udp = &mut frame[ETH_HEADER_LEN + IPV4_HEADER_LEN..UDP_FRAME_OVERHEAD];
    udp[0..2].copy_from_slice(&endpoints.src_port.to_be_bytes());
    udp[2..4].copy_from_slice(&endpoints.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    Ok(())
}

/// Computes and stores the UDP checksum of a frame built by [`build_udp`] (after its
/// payload changed).
fn finish_udp_checksum(frame: &mut [u8]) {
    let src = ip_at(frame, ETH_HEADER_LEN + 12);
    let dst = ip_at(frame, ETH_HEADER_LEN + 16);
    let udp_start = ETH_HEADER_LEN + IPV4_HEADER_LEN;
    frame[udp_start + 6..udp_start + 8].copy_from_slice(&[0, 0]);
    let checksum = udp_checksum(src, dst, &frame[udp_start..]);
    frame[udp_start + 6..udp_start + 8].copy_from_slice(&checksum.to_be_bytes());
}

/// A test frame built once per run and stamped per packet: only the sequence number,
/// the send time and the UDP checksum differ between packets. The checksum comes from
/// a sum kept aside, so stamping reads nothing back from the frame (the transmit fast
/// path; re-summing the payload per packet cost a fifth of the sender's time).
#[derive(Debug, Clone)]
pub struct TestFrameTemplate {
    /// The first bytes of the frame (every field that changes is among them), with
    /// sequence number and send time zero: a fixed-size array, so that stamping copies
    /// it with a few vector moves rather than a call to memcpy.
    head: [u8; TEMPLATE_HEAD_LEN],
    /// The rest of the frame (empty for minimum-size frames).
    tail: Vec<u8>,
    /// One's-complement sum (unfolded) of the pseudo-header and the UDP datagram with
    /// its checksum field, sequence number and send time zero.
    base_sum: u32,
}

/// Where the sequence number starts: after the UDP header and the payload magic.
const SEQ_OFFSET: usize = UDP_FRAME_OVERHEAD + 4;
const UDP_CHECKSUM_OFFSET: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + 6;
/// The template's fixed-size head: the minimum frame.
const TEMPLATE_HEAD_LEN: usize = MIN_FRAME_SIZE as usize;
const _: () = assert!(SEQ_OFFSET + 16 <= TEMPLATE_HEAD_LEN);

impl TestFrameTemplate {
    /// A template of `frame_size` bytes (64..=1514) between `endpoints`.
    pub fn new(frame_size: usize, endpoints: &UdpEndpoints) -> Result<Self, PacketError> {
        let mut frame = vec![0u8; frame_size];
        build_udp(&mut frame, endpoints, &PayloadHeader { seq: 0, tx_ns: 0 })?;
        let mut udp = frame[ETH_HEADER_LEN + IPV4_HEADER_LEN..].to_vec();
        udp[6..8].copy_from_slice(&[0, 0]);
        let base_sum = udp_sum(endpoints.src_ip, endpoints.dst_ip, &udp);
        let mut head = [0u8; TEMPLATE_HEAD_LEN];
        head.copy_from_slice(&frame[..TEMPLATE_HEAD_LEN]);
        Ok(TestFrameTemplate {
            head,
            tail: frame.split_off(TEMPLATE_HEAD_LEN),
            base_sum,
        })
    }

    /// Frame length in bytes.
    pub fn len(&self) -> usize {
        TEMPLATE_HEAD_LEN + self.tail.len()
    }

    /// Always false: a template holds at least the minimum frame.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the frame carrying `seq` and `tx_ns` into `out`, which must be exactly
    /// [`len`](Self::len) bytes.
    #[inline]
    pub fn write(&self, out: &mut [u8], seq: u64, tx_ns: u64) -> Result<(), PacketError> {
        let size = out.len();
        let wrong_size = || PacketError::FrameSize {
            size,
            min: self.len(),
            max: self.len(),
        };
        if out.len() != self.len() {
            return Err(wrong_size());
        }
        let (head, tail) = out.split_at_mut(TEMPLATE_HEAD_LEN);
        let head: &mut [u8; TEMPLATE_HEAD_LEN] = head.try_into().map_err(|_| wrong_size())?;
        *head = self.head;
        if !tail.is_empty() {
            tail.copy_from_slice(&self.tail);
        }
        head[SEQ_OFFSET..SEQ_OFFSET + 8].copy_from_slice(&seq.to_be_bytes());
        head[SEQ_OFFSET + 8..SEQ_OFFSET + 16].copy_from_slice(&tx_ns.to_be_bytes());
        let sum = self.base_sum + word_sum(seq) + word_sum(tx_ns);
        let mut checksum = !fold(sum);
        if checksum == 0 {
            checksum = 0xffff;
        }
        head[UDP_CHECKSUM_OFFSET..UDP_CHECKSUM_OFFSET + 2].copy_from_slice(&checksum.to_be_bytes());
        Ok(())
    }
}

/// The sum of the four big-endian 16-bit words `value` is written as.
#[inline]
fn word_sum(value: u64) -> u32 {
    let b = value.to_be_bytes();
    [[b[0], b[1]], [b[2], b[3]], [b[4], b[5]], [b[6], b[7]]]
        .into_iter()
        .map(|word| u32::from(u16::from_be_bytes(word)))
        .sum()
}

/// The sequence number of a test frame, read cheaply and without verifying
/// checksums: for counting on the receive fast path. `None` for anything that is not
/// IPv4/UDP (no options) to [`TEST_UDP_PORT`] with our magic.
#[inline]
pub fn peek_test_seq(frame: &[u8]) -> Option<u64> {
    if frame.len() < UDP_FRAME_OVERHEAD + PAYLOAD_HEADER_LEN
        || be16(frame, 12) != ETHERTYPE_IPV4
        || frame[ETH_HEADER_LEN] != 0x45
        || frame[ETH_HEADER_LEN + 9] != IP_PROTO_UDP
        || be16(frame, ETH_HEADER_LEN + IPV4_HEADER_LEN + 2) != TEST_UDP_PORT
        || frame[UDP_FRAME_OVERHEAD..SEQ_OFFSET] != PAYLOAD_MAGIC.to_be_bytes()
    {
        return None;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&frame[SEQ_OFFSET..SEQ_OFFSET + 8]);
    Some(u64::from_be_bytes(seq))
}

/// Which way a latency probe is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeLeg {
    /// On its way to the receiver, which returns it.
    Out,
    /// Returned to its sender.
    Back,
}

/// A latency probe's direction and send time, read cheaply like [`peek_test_seq`]:
/// IPv4/UDP (no options) with our magic, from [`PROBE_SOURCE_PORT`] to
/// [`PROBE_UDP_PORT`] (out) or the reverse (back).
#[inline]
pub fn peek_probe(frame: &[u8]) -> Option<(ProbeLeg, u64)> {
    if frame.len() < UDP_FRAME_OVERHEAD + PAYLOAD_HEADER_LEN
        || be16(frame, 12) != ETHERTYPE_IPV4
        || frame[ETH_HEADER_LEN] != 0x45
        || frame[ETH_HEADER_LEN + 9] != IP_PROTO_UDP
        || frame[UDP_FRAME_OVERHEAD..SEQ_OFFSET] != PAYLOAD_MAGIC.to_be_bytes()
    {
        return None;
    }
    let udp = ETH_HEADER_LEN + IPV4_HEADER_LEN;
    let leg = match (be16(frame, udp), be16(frame, udp + 2)) {
        (PROBE_SOURCE_PORT, PROBE_UDP_PORT) => ProbeLeg::Out,
        (PROBE_UDP_PORT, PROBE_SOURCE_PORT) => ProbeLeg::Back,
        _ => return None,
    };
    let mut tx_ns = [0u8; 8];
    tx_ns.copy_from_slice(&frame[SEQ_OFFSET + 8..SEQ_OFFSET + 16]);
    Some((leg, u64::from_be_bytes(tx_ns)))
}

/// Turns a valid IPv4/UDP frame into its answer in place: swaps MACs, IPs and UDP
/// ports. Both checksums stay valid (one's-complement sums do not depend on order).
pub fn swap_udp_in_place(frame: &mut [u8]) -> Result<(), PacketError> {
    let header_len = match parse(frame)? {
        Frame::Udp(_) => usize::from(frame[ETH_HEADER_LEN] & 0x0f) * 4,
        Frame::Arp { .. } | Frame::Other { .. } => {
            return Err(PacketError::NotUdp);
        }
    };
    let (dst, src) = frame[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    let ip = &mut frame[ETH_HEADER_LEN..];
    let (src_ip, dst_ip) = ip[12..20].split_at_mut(4);
    src_ip.swap_with_slice(dst_ip);
    let udp = &mut frame[ETH_HEADER_LEN + header_len..];
    let (src_port, dst_port) = udp[..4].split_at_mut(2);
    src_port.swap_with_slice(dst_port);
    Ok(())
}

/// Sets the TTL of an IPv4 frame and writes its header checksum again (the UDP
/// checksum does not cover the TTL).
pub fn set_ipv4_ttl(frame: &mut [u8], ttl: u8) -> Result<(), PacketError> {
    let available = frame.len();
    let header_len = frame
        .get(ETH_HEADER_LEN)
        .map_or(0, |first| usize::from(first & 0x0f) * 4);
    if header_len < IPV4_HEADER_LEN {
        return Err(PacketError::IpHeaderLength(header_len));
    }
    let header = frame
        .get_mut(ETH_HEADER_LEN..ETH_HEADER_LEN + header_len)
        .ok_or_else(|| truncated("IPv4 header", ETH_HEADER_LEN + header_len, available))?;
    header[8] = ttl;
    header[10..12].fill(0);
    let checksum = ipv4_checksum(header);
    header[10..12].copy_from_slice(&checksum.to_be_bytes());
    Ok(())
}

/// Turns a valid ICMP echo request to `ip` into its echo reply in place: swaps MACs
/// and IPs, sets the TTL to 64 and the type to echo reply, and writes both
/// checksums again. Returns false (frame untouched) for anything else that parses,
/// and an error for a malformed frame or a wrong ICMP checksum.
pub fn icmp_echo_reply_in_place(frame: &mut [u8], ip: Ipv4Addr) -> Result<bool, PacketError> {
    match parse(frame)? {
        Frame::Other { eth } if eth.ethertype == ETHERTYPE_IPV4 => {}
        _ => return Ok(false),
    }
    // parse() checked the IPv4 header: version, lengths, checksum, no fragment.
    let l3 = &frame[ETH_HEADER_LEN..];
    let header_len = usize::from(l3[0] & 0x0f) * 4;
    let total = usize::from(be16(l3, 2));
    if l3[9] != IP_PROTO_ICMP || ip_at(l3, 16) != ip {
        return Ok(false);
    }
    let icmp_len = total - header_len;
    if icmp_len < ICMP_ECHO_HEADER_LEN {
        return Err(truncated("ICMP echo", ICMP_ECHO_HEADER_LEN, icmp_len));
    }
    let icmp = &l3[header_len..total];
    if icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 {
        return Ok(false);
    }
    if fold(ones_complement_sum(0, icmp)) != 0xffff {
        return Err(PacketError::IcmpChecksum);
    }
    let (dst, src) = frame[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    let l3 = &mut frame[ETH_HEADER_LEN..ETH_HEADER_LEN + total];
    let (src_ip, dst_ip) = l3[12..20].split_at_mut(4);
    src_ip.swap_with_slice(dst_ip);
    l3[8] = DEFAULT_TTL;
    l3[10..12].fill(0);
    let checksum = ipv4_checksum(&l3[..header_len]);
    l3[10..12].copy_from_slice(&checksum.to_be_bytes());
    let icmp = &mut l3[header_len..];
    icmp[0] = ICMP_ECHO_REPLY;
    icmp[2..4].fill(0);
    let checksum = !fold(ones_complement_sum(0, icmp));
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
    Ok(true)
}

/// Writes an ARP frame into `frame` (at least 60 bytes; the tail is zero padding) and
/// returns its length, 60.
pub fn build_arp(
    frame: &mut [u8],
    eth_dst: MacAddr,
    arp: &ArpPacket,
) -> Result<usize, PacketError> {
    let available = frame.len();
    let out = frame
        .get_mut(..ETH_MIN_FRAME)
        .ok_or_else(|| truncated("ARP frame buffer", ETH_MIN_FRAME, available))?;
    out.fill(0);
    out[0..6].copy_from_slice(&eth_dst);
    out[6..12].copy_from_slice(&arp.sender_mac);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let body = &mut out[ETH_HEADER_LEN..ETH_HEADER_LEN + ARP_LEN];
    body[0..2].copy_from_slice(&1u16.to_be_bytes());
    body[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    body[4] = 6;
    body[5] = 4;
    let op: u16 = match arp.op {
        ArpOp::Request => 1,
        ArpOp::Reply => 2,
    };
    body[6..8].copy_from_slice(&op.to_be_bytes());
    body[8..14].copy_from_slice(&arp.sender_mac);
    body[14..18].copy_from_slice(&arp.sender_ip.octets());
    body[18..24].copy_from_slice(&arp.target_mac);
    body[24..28].copy_from_slice(&arp.target_ip.octets());
    Ok(ETH_MIN_FRAME)
}

/// An ARP request from `mac`/`ip` asking for `target`, broadcast.
pub fn arp_request(mac: MacAddr, ip: Ipv4Addr, target: Ipv4Addr) -> ArpPacket {
    ArpPacket {
        op: ArpOp::Request,
        sender_mac: mac,
        sender_ip: ip,
        target_mac: [0; 6],
        target_ip: target,
    }
}

/// The reply to `request` from the owner of its target IP, `mac`.
pub fn arp_reply(request: &ArpPacket, mac: MacAddr) -> ArpPacket {
    ArpPacket {
        op: ArpOp::Reply,
        sender_mac: mac,
        sender_ip: request.target_ip,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mac_text_round_trips_and_junk_is_refused() {
        let mac = [0x02, 0x00, 0xab, 0xcd, 0xef, 0x10];
        assert_eq!(super::parse_mac(&super::format_mac(&mac)), Ok(mac));
        assert_eq!(super::parse_mac("02-00-AB-cd-ef-10"), Ok(mac));
        for junk in [
            "",
            "02:00:ab:cd:ef",
            "02:00:ab:cd:ef:10:11",
            "2:00:ab:cd:ef:10",
            "zz:00:ab:cd:ef:10",
            "+2:00:ab:cd:ef:10",
        ] {
            let err = super::parse_mac(junk).expect_err(junk);
            assert!(err.contains("not a MAC address"), "{err}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    /// An ICMP echo request as `ping -c1 -s 8` sends it: 20-byte IPv4 header, 8-byte
    /// echo header, 8 bytes of data, padded to the Ethernet minimum.
    fn echo_request(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let mut frame = vec![0u8; ETH_MIN_FRAME];
        frame[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let ip = &mut frame[ETH_HEADER_LEN..ETH_HEADER_LEN + 36];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&36u16.to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 61;
        ip[9] = IP_PROTO_ICMP;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let checksum = ipv4_checksum(&ip[..20]);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        let icmp = &mut ip[20..];
        icmp[0] = ICMP_ECHO_REQUEST;
        icmp[4..8].copy_from_slice(&[0x12, 0x34, 0, 7]);
        icmp[8..].copy_from_slice(b"pingdata");
        let checksum = !fold(ones_complement_sum(0, icmp));
        icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
        frame
    }

    #[test]
    fn a_probe_goes_out_comes_back_swapped_and_is_never_taken_for_load() {
        let out = UdpEndpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(10, 0, 1, 4),
            dst_ip: Ipv4Addr::new(10, 0, 1, 6),
            src_port: PROBE_SOURCE_PORT,
            dst_port: PROBE_UDP_PORT,
        };
        let template = TestFrameTemplate::new(128, &out).unwrap();
        let mut frame = vec![0u8; 128];
        template.write(&mut frame, 3, 123_456_789).unwrap();
        assert_eq!(peek_probe(&frame), Some((ProbeLeg::Out, 123_456_789)));
        assert_eq!(peek_test_seq(&frame), None, "a probe is not a load frame");
        swap_udp_in_place(&mut frame).unwrap();
        assert_eq!(peek_probe(&frame), Some((ProbeLeg::Back, 123_456_789)));
        assert_eq!(peek_test_seq(&frame), None);
        assert!(
            matches!(parse(&frame), Ok(Frame::Udp(_))),
            "checksums still hold"
        );
        let load = TestFrameTemplate::new(
            128,
            &UdpEndpoints {
                src_port: TEST_UDP_PORT,
                dst_port: TEST_UDP_PORT,
                ..out
            },
        )
        .unwrap();
        load.write(&mut frame, 3, 1).unwrap();
        assert_eq!(peek_probe(&frame), None, "a load frame is not a probe");
    }

    #[test]
    fn echo_requests_to_us_get_a_valid_reply_and_nothing_else_is_touched() {
        let (peer, us) = (Ipv4Addr::new(10, 0, 1, 6), Ipv4Addr::new(10, 0, 1, 4));
        let mut frame = echo_request(peer, us);
        assert_eq!(icmp_echo_reply_in_place(&mut frame, us), Ok(true));
        assert_eq!(frame[0..6], [2, 0, 0, 0, 0, 1]);
        assert_eq!(frame[6..12], [2, 0, 0, 0, 0, 2]);
        let ip = &frame[ETH_HEADER_LEN..ETH_HEADER_LEN + 36];
        assert_eq!(ipv4_checksum(&ip[..20]), 0, "IPv4 checksum");
        assert_eq!(ip_at(ip, 12), us);
        assert_eq!(ip_at(ip, 16), peer);
        assert_eq!(ip[8], DEFAULT_TTL);
        let icmp = &ip[20..];
        assert_eq!(icmp[0], ICMP_ECHO_REPLY);
        assert_eq!(fold(ones_complement_sum(0, icmp)), 0xffff, "ICMP checksum");
        assert_eq!(
            &icmp[4..8],
            &[0x12, 0x34, 0, 7],
            "identifier and sequence kept"
        );
        assert_eq!(&icmp[8..], b"pingdata");

        // Someone else's, a reply, a UDP frame: untouched.
        for mut other in [
            echo_request(peer, Ipv4Addr::new(10, 0, 1, 9)),
            frame.clone(),
        ] {
            let before = other.clone();
            assert_eq!(icmp_echo_reply_in_place(&mut other, us), Ok(false));
            assert_eq!(other, before);
        }
        let mut corrupt = echo_request(peer, us);
        corrupt[ETH_HEADER_LEN + 20 + 9] ^= 0xff;
        assert_eq!(
            icmp_echo_reply_in_place(&mut corrupt, us),
            Err(PacketError::IcmpChecksum)
        );
    }

    fn endpoints() -> impl Strategy<Value = UdpEndpoints> {
        (
            any::<[u8; 6]>(),
            any::<[u8; 6]>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
        )
            .prop_map(
                |(src_mac, dst_mac, src, dst, src_port, dst_port)| UdpEndpoints {
                    src_mac,
                    dst_mac,
                    src_ip: Ipv4Addr::from(src),
                    dst_ip: Ipv4Addr::from(dst),
                    src_port,
                    dst_port,
                },
            )
    }

    /// Independent check: the one's-complement sum of a header including its
    /// checksum is all ones.
    fn sums_to_all_ones(words: &[u8]) -> bool {
        let mut sum: u64 = 0;
        for pair in words.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            sum += hi | lo;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn known_ipv4_checksum() {
        // Example header from RFC 1071 discussions / Wikipedia: checksum 0xb861.
        let header: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&header), 0xb861);
    }

    /// 10.0.0.1 to 10.0.0.2 on the test port, locally administered MACs.
    fn two_hosts() -> UdpEndpoints {
        UdpEndpoints {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: TEST_UDP_PORT,
            dst_port: TEST_UDP_PORT,
        }
    }

    #[test]
    fn frame_sizes_outside_limits_are_rejected() {
        let endpoints = two_hosts();
        let header = PayloadHeader { seq: 1, tx_ns: 2 };
        let mut small = [0u8; 63];
        assert!(matches!(
            build_udp(&mut small, &endpoints, &header),
            Err(PacketError::FrameSize { size: 63, .. })
        ));
        let mut big = vec![0u8; 1515];
        assert!(matches!(
            build_udp(&mut big, &endpoints, &header),
            Err(PacketError::FrameSize { size: 1515, .. })
        ));
    }

    #[test]
    fn corrupted_checksums_are_detected() {
        let endpoints = two_hosts();
        let mut frame = [0u8; 64];
        build_udp(&mut frame, &endpoints, &PayloadHeader { seq: 7, tx_ns: 8 }).unwrap();
        let mut bad_ip = frame;
        bad_ip[ETH_HEADER_LEN + 8] ^= 1; // TTL
        assert_eq!(parse(&bad_ip), Err(PacketError::IpChecksum));
        let mut bad_udp = frame;
        bad_udp[60] ^= 0x10;
        assert_eq!(parse(&bad_udp), Err(PacketError::UdpChecksum));
    }

    proptest! {
        #[test]
        fn udp_round_trip(
            endpoints in endpoints(),
            size in usize::from(MIN_FRAME_SIZE)..=usize::from(MAX_FRAME_SIZE),
            seq in any::<u64>(),
            tx_ns in any::<u64>(),
        ) {
            let mut frame = vec![0u8; size];
            let header = PayloadHeader { seq, tx_ns };
            build_udp(&mut frame, &endpoints, &header).unwrap();
            prop_assert!(sums_to_all_ones(&frame[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV4_HEADER_LEN]));
            let Frame::Udp(udp) = parse(&frame).unwrap() else {
                return Err(TestCaseError::fail("not parsed as UDP"));
            };
            prop_assert_eq!(udp.eth.src, endpoints.src_mac);
            prop_assert_eq!(udp.eth.dst, endpoints.dst_mac);
            prop_assert_eq!(udp.src_ip, endpoints.src_ip);
            prop_assert_eq!(udp.dst_ip, endpoints.dst_ip);
            prop_assert_eq!(udp.src_port, endpoints.src_port);
            prop_assert_eq!(udp.dst_port, endpoints.dst_port);
            prop_assert_eq!(udp.payload.len(), size - UDP_FRAME_OVERHEAD);
            prop_assert_eq!(PayloadHeader::parse(udp.payload).unwrap(), header);
            // UDP checksum checked independently over pseudo-header + segment.
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&endpoints.src_ip.octets());
            pseudo.extend_from_slice(&endpoints.dst_ip.octets());
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&u16::try_from(size - 34).unwrap().to_be_bytes());
            pseudo.extend_from_slice(&frame[ETH_HEADER_LEN + IPV4_HEADER_LEN..]);
            prop_assert!(sums_to_all_ones(&pseudo));
        }

        #[test]
        fn template_writes_what_build_udp_builds(
            endpoints in endpoints(),
            size in usize::from(MIN_FRAME_SIZE)..=1514usize,
            header in any::<(u64, u64)>(),
        ) {
            let template = TestFrameTemplate::new(size, &endpoints).unwrap();
            let mut frame = vec![0u8; size];
            template.write(&mut frame, header.0, header.1).unwrap();
            let header = PayloadHeader { seq: header.0, tx_ns: header.1 };
            let mut built = vec![0u8; size];
            build_udp(&mut built, &endpoints, &header).unwrap();
            prop_assert_eq!(&frame, &built);
            let Frame::Udp(udp) = parse(&frame).unwrap() else {
                return Err(TestCaseError::fail("not UDP"));
            };
            prop_assert_eq!(PayloadHeader::parse(udp.payload).unwrap(), header);
            prop_assert_eq!(peek_test_seq(&frame), (endpoints.dst_port == TEST_UDP_PORT).then_some(header.seq));
            prop_assert!(template.write(&mut vec![0u8; size + 1], 0, 0).is_err());
        }

        #[test]
        fn swap_round_trip(endpoints in endpoints(), size in 64usize..=300) {
            let mut frame = vec![0u8; size];
            build_udp(&mut frame, &endpoints, &PayloadHeader { seq: 1, tx_ns: 2 }).unwrap();
            let original = frame.clone();
            swap_udp_in_place(&mut frame).unwrap();
            let Frame::Udp(udp) = parse(&frame).unwrap() else {
                return Err(TestCaseError::fail("not UDP"));
            };
            prop_assert_eq!(udp.src_ip, endpoints.dst_ip);
            prop_assert_eq!(udp.dst_ip, endpoints.src_ip);
            prop_assert_eq!(udp.eth.dst, endpoints.src_mac);
            prop_assert_eq!(udp.src_port, endpoints.dst_port);
            swap_udp_in_place(&mut frame).unwrap();
            prop_assert_eq!(frame, original);
        }

        #[test]
        fn arp_round_trip(
            mac in any::<[u8; 6]>(), peer_mac in any::<[u8; 6]>(),
            ip in any::<u32>(), target in any::<u32>(),
        ) {
            let request = arp_request(mac, Ipv4Addr::from(ip), Ipv4Addr::from(target));
            let mut frame = [0u8; 60];
            prop_assert_eq!(build_arp(&mut frame, BROADCAST_MAC, &request).unwrap(), 60);
            let Frame::Arp { eth, arp } = parse(&frame).unwrap() else {
                return Err(TestCaseError::fail("not ARP"));
            };
            prop_assert_eq!(eth.dst, BROADCAST_MAC);
            prop_assert_eq!(arp, request);
            let reply = arp_reply(&arp, peer_mac);
            build_arp(&mut frame, arp.sender_mac, &reply).unwrap();
            let Frame::Arp { arp: parsed, .. } = parse(&frame).unwrap() else {
                return Err(TestCaseError::fail("not ARP"));
            };
            prop_assert_eq!(parsed.op, ArpOp::Reply);
            prop_assert_eq!(parsed.sender_ip, Ipv4Addr::from(target));
            prop_assert_eq!(parsed.sender_mac, peer_mac);
            prop_assert_eq!(parsed.target_mac, mac);
        }

        #[test]
        fn truncated_frames_are_errors(endpoints in endpoints(), size in 64usize..=200) {
            let mut frame = vec![0u8; size];
            build_udp(&mut frame, &endpoints, &PayloadHeader { seq: 3, tx_ns: 4 }).unwrap();
            for cut in 0..size {
                prop_assert!(parse(&frame[..cut]).is_err(), "cut at {} parsed", cut);
            }
            let mut arp = [0u8; 60];
            build_arp(&mut arp, BROADCAST_MAC, &arp_request([1; 6], Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST)).unwrap();
            for cut in 0..ETH_HEADER_LEN + ARP_LEN {
                prop_assert!(parse(&arp[..cut]).is_err());
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let _ = parse(&bytes);
            let _ = peek_test_seq(&bytes);
            let mut copy = bytes.clone();
            let _ = swap_udp_in_place(&mut copy);
            let _ = PayloadHeader::parse(&bytes);
        }

        #[test]
        fn corrupted_ipv4_headers_never_panic(
            endpoints in endpoints(),
            index in 14usize..34,
            value in any::<u8>(),
        ) {
            let mut frame = [0u8; 64];
            build_udp(&mut frame, &endpoints, &PayloadHeader { seq: 0, tx_ns: 0 }).unwrap();
            frame[index] = value;
            let _ = parse(&frame);
        }
    }
}
