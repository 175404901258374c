//! Who the client is: the TCP peer, unless the peer is a trusted proxy, in which case the
//! nearest address in `X-Forwarded-For` that is not itself a trusted proxy. A header from
//! anyone else is ignored, so a client cannot pick the address it is throttled under.

use std::net::IpAddr;

use poem::Request;

/// `server.trusted_proxies`, parsed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpBlock>);

#[derive(Debug, Clone, Copy)]
struct IpBlock {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `192.168.1.7`, `::1`, `fd00::/8`, …
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|entry| IpBlock::parse(entry.trim()).ok_or_else(|| entry.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
            .map_err(|entry| {
                format!("server.trusted_proxies: {entry:?} is not an IP address or CIDR block")
            })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|block| block.contains(address))
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

impl IpBlock {
    fn parse(text: &str) -> Option<IpBlock> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        (prefix <= bits).then_some(IpBlock {
            network: network.to_canonical(),
            prefix,
        })
    }

    fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => same_prefix(
                network.to_bits().into(),
                address.to_bits().into(),
                32,
                self.prefix,
            ),
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                same_prefix(network.to_bits(), address.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, bits: u8, prefix: u8) -> bool {
    let shift = u32::from(bits - prefix);
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
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
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::/129"] {
            assert!(TrustedProxies::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
