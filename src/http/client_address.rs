//! Who the client is: the TCP peer, unless the peer is a trusted proxy, in which case the
//! nearest address in `X-Forwarded-For` that is not itself a trusted proxy. A header from
//! anyone else is ignored, so a client cannot pick the address it is throttled under.

use std::net::IpAddr;

use ipnet::IpNet;
use poem::Request;

/// `server.trusted_proxies`: CIDR blocks (a plain address is a block of one).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(blocks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(blocks)
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|block| block.contains(&address))
    }

    /// The client's address, from the peer and the `X-Forwarded-For` values in order.
    pub fn client_address<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        // Right to left: each trusted proxy vouches for the hop before it.
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(address) => client = address.to_canonical(),
                // An unreadable hop: nothing before it can be trusted.
                Err(_) => return Some(client),
            }
            if !self.contains(client) {
                return Some(client);
            }
        }
        Some(client)
    }

    /// [`TrustedProxies::client_address`] of a request, as text ("" when unknown).
    pub fn client_of(&self, request: &Request) -> String {
        let peer = request.remote_addr().as_socket_addr().map(|addr| addr.ip());
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        self.client_address(peer, forwarded)
            .map(|address| address.to_string())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_ip_block;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            entries
                .iter()
                .map(|entry| parse_ip_block(entry).unwrap())
                .collect(),
        )
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = trusted(&["10.0.0.0/8"]);
        assert_eq!(
            proxies.client_address(ip("203.0.113.9"), ["1.2.3.4"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_address(ip("127.0.0.1"), ["1.2.3.4"]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_nearest_untrusted_hop() {
        let proxies = trusted(&["10.0.0.0/8", "::1"]);
        // The client forged the first entry; the proxies appended the rest.
        let chain = ["6.6.6.6, 198.51.100.7", "10.1.2.3"];
        assert_eq!(
            proxies.client_address(ip("10.0.0.1"), chain),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_address(ip("::1"), ["198.51.100.7"]),
            ip("198.51.100.7")
        );
        assert_eq!(proxies.client_address(ip("10.0.0.1"), []), ip("10.0.0.1"));
        assert_eq!(
            proxies.client_address(ip("10.0.0.1"), ["junk, 198.51.100.7"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            proxies.client_address(ip("10.0.0.1"), ["198.51.100.7, junk"]),
            ip("10.0.0.1")
        );
        assert_eq!(
            proxies.client_address(ip("::ffff:10.0.0.1"), ["192.0.2.1"]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn blocks_parse_and_match() {
        let proxies = trusted(&["192.168.0.0/16", "2001:db8::/32", "172.16.0.1", "0.0.0.0/0"]);
        assert!(proxies.contains("192.168.255.1".parse().unwrap()));
        assert!(proxies.contains("2001:db8::1".parse().unwrap()));
        assert!(!trusted(&["192.168.0.0/16"]).contains("192.169.0.1".parse().unwrap()));
        assert!(!trusted(&["2001:db8::/32"]).contains("2001:db9::1".parse().unwrap()));
        assert!(trusted(&["::ffff:10.0.0.1"]).contains("10.0.0.1".parse().unwrap()));
        assert!(trusted(&["10.0.0.1"]).contains("::ffff:10.0.0.1".parse().unwrap()));
    }
}
