//! Drops on the user-mode data link. Each VM's end of the link is a UDP socket of its
//! QEMU process on 127.0.0.1; when the guest cannot drain its virtio rx ring, QEMU
//! stops reading and the kernel drops datagrams at that socket. `/proc/net/udp` counts
//! those drops per socket, which is how `bench` accounts for loss no guest counter sees.

use std::net::{Ipv4Addr, SocketAddrV4};

/// The `drops` column of the `/proc/net/udp` row bound to `local`, if there is one.
pub fn socket_drops(proc_net_udp: &str, local: SocketAddrV4) -> Option<u64> {
    proc_net_udp.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let address = parse_hex_addr(fields.get(1)?)?;
        (address == local).then(|| fields.last()?.parse().ok())?
    })
}

/// Reads the live table; `None` when the socket is not there (nat mode, VM down).
pub fn read_socket_drops(local: SocketAddrV4) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/udp").ok()?;
    socket_drops(&text, local)
}

/// `0100007F:1F90` (address in host byte order as hex, port as hex).
fn parse_hex_addr(text: &str) -> Option<SocketAddrV4> {
    let (addr, port) = text.split_once(':')?;
    let addr = u32::from_str_radix(addr, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints the address as the raw in-memory u32 (network order bytes read
    // as a little-endian number on x86).
    let ip = Ipv4Addr::from(addr.swap_bytes());
    Some(SocketAddrV4::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  345: 0100007F:9C41 0100007F:9C42 01 00000000:00034000 00:00000000 00000000 64055        0 123456 2 0000000000000000 48213
  346: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12345 2 0000000000000000 0
";

    #[test]
    fn finds_the_drops_of_the_bound_socket() {
        let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0x9C41);
        assert_eq!(socket_drops(SAMPLE, local), Some(48213));
        let other = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0x9C40);
        assert_eq!(socket_drops(SAMPLE, other), None);
    }

    #[test]
    fn reads_a_real_socket_of_this_process() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(local) = socket.local_addr().unwrap() else {
            unreachable!()
        };
        assert_eq!(read_socket_drops(local), Some(0));
    }
}
