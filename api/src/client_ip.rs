//! The caller's IP address: the socket peer, or the "real" IP behind a trusted proxy
//! (`settings.trustedProxy`), plus IP/CIDR lists (`superuserIPs`, `rateLimits.excludedIPs`).
//!
//! Measured on PocketBase v0.40.6 (black box):
//! 1. Trusted headers are tried in the configured order (names are case-insensitive); the first
//!    header holding a valid IP wins. A header is a comma-separated list: by default the
//!    right-most valid IP is used, with `useLeftmostIP` the left-most one. Empty or invalid
//!    entries are skipped; a header without any valid IP is ignored.
//! 2. Without trusted headers, or when none holds a valid IP, the real IP is the socket peer.
//! 3. `possibleProxyHeader` (health endpoint, superusers only) names the first configured
//!    trusted header present in the request; when none is, the first present of
//!    `CF-Connecting-IP`, `Fly-Client-IP`, `X-Forwarded-For` (a hint to configure the proxy).
//!
//! Invariants: never panics on any header value; header values are bounded by the HTTP
//! server's header limits and at most [`MAX_HEADER_ENTRIES`] entries of one header are looked at.

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};

/// Most comma-separated entries of one header that are examined.
pub const MAX_HEADER_ENTRIES: usize = 64;

/// Headers reported as a possible proxy header when no trusted header is configured.
const PROXY_HINT_HEADERS: &[&str] = &["CF-Connecting-IP", "Fly-Client-IP", "X-Forwarded-For"];

/// `settings.trustedProxy`, parsed once per settings version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxy {
    /// Header names, in order (as configured).
    pub headers: Vec<String>,
    /// Use the left-most valid IP of a header instead of the right-most.
    pub use_leftmost_ip: bool,
}

impl TrustedProxy {
    /// From the settings JSON (missing or malformed parts count as "not configured").
    pub fn from_settings(settings: &Value) -> TrustedProxy {
        let proxy = settings.get("trustedProxy");
        let headers = proxy
            .and_then(|p| p.get("headers"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let use_leftmost_ip = proxy
            .and_then(|p| p.get("useLeftmostIP"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        TrustedProxy {
            headers,
            use_leftmost_ip,
        }
    }
}

/// Where a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    /// The socket peer's IP (`""` when unknown, e.g. a router driven without a socket).
    pub remote: String,
    /// The real IP: from a trusted proxy header, else the peer.
    pub real: String,
    /// The header hint shown by the health endpoint (`""` for none).
    pub proxy_header: String,
}

/// The socket peer recorded by the server (`ConnectInfo`), when there is one.
pub fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| canonical(addr.ip()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, dual-stack sockets) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Parses one IP address (surrounding blanks allowed).
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse::<IpAddr>().ok().map(canonical)
}

/// The valid IP of one trusted header value (right-most, or left-most when asked).
fn ip_of_header(value: &str, leftmost: bool) -> Option<IpAddr> {
    let entries = value.split(',').take(MAX_HEADER_ENTRIES);
    if leftmost {
        entries.filter_map(parse_ip).next()
    } else {
        entries.filter_map(parse_ip).last()
    }
}

/// Resolves the caller's IPs from the headers and the socket peer.
pub fn resolve(proxy: &TrustedProxy, headers: &HeaderMap, peer: Option<IpAddr>) -> ClientIp {
    let remote = peer.map(|ip| ip.to_string()).unwrap_or_default();
    let mut real = None;
    let mut proxy_header = None;
    for name in &proxy.headers {
        let Some(value) = headers.get(name.as_str()) else {
            continue;
        };
        if proxy_header.is_none() {
            proxy_header = Some(name.clone());
        }
        if let Some(ip) = value
            .to_str()
            .ok()
            .and_then(|text| ip_of_header(text, proxy.use_leftmost_ip))
        {
            real = Some(ip.to_string());
            proxy_header = Some(name.clone());
            break;
        }
    }
    let proxy_header = proxy_header.unwrap_or_else(|| {
        PROXY_HINT_HEADERS
            .iter()
            .find(|name| {
                headers
                    .get(**name)
                    .is_some_and(|value| !value.as_bytes().is_empty())
            })
            .map(|name| (*name).to_string())
            .unwrap_or_default()
    });
    ClientIp {
        real: real.unwrap_or_else(|| remote.clone()),
        remote,
        proxy_header,
    }
}

/// One entry of an IP allow/deny list: an address or a CIDR subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `1.2.3.4`, `10.0.0.0/8`, `::1`, `fe80::/10` (None when invalid).
    pub fn parse(text: &str) -> Option<IpNet> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => {
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (addr, Some(prefix.parse::<u8>().ok()?))
            }
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(IpNet { addr, prefix })
    }

    /// True when `ip` is inside this subnet (IPv4-mapped IPv6 compares as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (canonical(self.addr), canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(net: u128, ip: u128, bits: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix).min(bits);
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (net >> shift) == (ip >> shift)
}

/// A parsed list of IPs and subnets (invalid entries are dropped; settings validation refuses
/// them on save, so only hand-edited data can hold any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList(Vec<IpNet>);

impl IpList {
    /// From a JSON array of strings (anything else is an empty list).
    pub fn from_json(value: Option<&Value>) -> IpList {
        IpList(
            value
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(Value::as_str)
                        .filter_map(IpNet::parse)
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// True when the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `ip` (text) is a valid IP inside one of the entries.
    pub fn contains(&self, ip: &str) -> bool {
        parse_ip(ip).is_some_and(|ip| self.0.iter().any(|net| net.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn proxy(names: &[&str], leftmost: bool) -> TrustedProxy {
        TrustedProxy {
            headers: names.iter().map(|n| n.to_string()).collect(),
            use_leftmost_ip: leftmost,
        }
    }

    #[test]
    fn rightmost_and_leftmost_valid_entries() {
        let peer = parse_ip("127.0.0.1");
        let h = headers(&[("x-forwarded-for", "junk, 10.1.2.3,, 10.9.9.9 , bad")]);
        let right = resolve(&proxy(&["X-Forwarded-For"], false), &h, peer);
        assert_eq!(right.real, "10.9.9.9");
        assert_eq!(right.proxy_header, "X-Forwarded-For");
        let left = resolve(&proxy(&["X-Forwarded-For"], true), &h, peer);
        assert_eq!(left.real, "10.1.2.3");
        assert_eq!(left.remote, "127.0.0.1");
    }

    #[test]
    fn invalid_header_falls_back_to_the_peer_and_next_header() {
        let peer = parse_ip("127.0.0.1");
        let h = headers(&[("x-real-ip", "garbage"), ("x-forwarded-for", "1.1.1.1")]);
        let ip = resolve(&proxy(&["X-Real-IP"], false), &h, peer);
        assert_eq!(ip.real, "127.0.0.1");
        assert_eq!(ip.proxy_header, "X-Real-IP");
        let ip = resolve(&proxy(&["X-Real-IP", "X-Forwarded-For"], false), &h, peer);
        assert_eq!(ip.real, "1.1.1.1");
        assert_eq!(ip.proxy_header, "X-Forwarded-For");
    }

    #[test]
    fn hint_without_trusted_headers() {
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("cf-connecting-ip", "2.2.2.2"),
        ]);
        let ip = resolve(&TrustedProxy::default(), &h, None);
        assert_eq!(ip.real, "");
        assert_eq!(ip.proxy_header, "CF-Connecting-IP");
        let ip = resolve(
            &TrustedProxy::default(),
            &headers(&[("x-real-ip", "1.1.1.1")]),
            None,
        );
        assert_eq!(ip.proxy_header, "");
    }

    #[test]
    fn subnets() {
        let list = IpList::from_json(Some(&serde_json::json!([
            "10.0.0.0/8",
            "192.168.1.7",
            "fe80::/10",
            "bad"
        ])));
        assert!(list.contains("10.200.3.4"));
        assert!(list.contains("192.168.1.7"));
        assert!(!list.contains("192.168.1.8"));
        assert!(list.contains("fe80::1"));
        assert!(list.contains("::ffff:10.0.0.1"));
        assert!(!list.contains("11.0.0.1"));
        assert!(!list.contains(""));
        assert!(IpNet::parse("1.2.3.4/33").is_none());
        assert!(IpNet::parse("1.2.3.4/").is_none());
        assert!(IpNet::parse("1.2.3.4/+1").is_none());
        assert!(IpNet::parse("0.0.0.0/0").is_some_and(|n| n.contains(parse_ip("8.8.8.8").unwrap())));
        assert!(IpNet::parse("::/0").is_some());
    }
}
