//! The SSRF guard: webhook URLs must be `http(s)` and resolve only to public addresses.
//!
//! Checked when an endpoint is created or changed (a literal address or a name that resolves to
//! a refused address is a 422) and again before every attempt on the addresses the name
//! resolves to *then*: the request is pinned to the checked address, so a DNS answer that
//! changes between the check and the connection (rebinding) cannot redirect it. Redirects are
//! not followed (a 3xx is a failed attempt), so a public endpoint cannot bounce the request
//! inward either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::time::Duration;

use reqwest::Url;

/// The longest a name lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a URL may not be a webhook target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("the URL is not valid: {0}")]
    Invalid(String),
    #[error("only http and https URLs can receive webhooks")]
    Scheme,
    #[error("URLs with credentials are not accepted (authenticate by the signature)")]
    Credentials,
    #[error(
        "{0} is a private, loopback, link-local or otherwise non-public address; webhooks go to public addresses only"
    )]
    Address(IpAddr),
    #[error("{0} cannot be resolved")]
    Unresolvable(String),
}

/// Whether `ip` may never be a webhook target, even where private targets are allowed:
/// unspecified (connects to this host), multicast and broadcast addresses.
pub fn never_allowed(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

/// Whether `ip` is not a public unicast address: private (RFC 1918), loopback, link-local,
/// unspecified, multicast, broadcast, CGNAT (100.64/10), "this network" (0/8), IETF protocol
/// assignments (192.0.0/24), benchmarking (198.18/15), reserved (240/4), and in IPv6 ULA
/// (fc00::/7), link-local (fe80::/10), site-local (fec0::/10); IPv4-mapped, IPv4-compatible,
/// NAT64 and 6to4 addresses are judged by the IPv4 address they carry.
pub fn non_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

/// May `ip` be sent to, with private targets `allow_private`?
pub fn allowed(ip: IpAddr, allow_private: bool) -> bool {
    !never_allowed(ip) && (allow_private || !non_public(ip))
}

/// IPv6 addresses that carry an IPv4 address, as that address.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else {
        return ip;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // NAT64 well-known prefix 64:ff9b::/96.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return IpAddr::V4(embedded(s[6], s[7]));
    }
    // 6to4 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return IpAddr::V4(embedded(s[1], s[2]));
    }
    // IPv4-compatible ::a.b.c.d (deprecated), but not :: and ::1.
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return IpAddr::V4(embedded(s[6], s[7]));
    }
    ip
}

fn non_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..=127).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn non_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
}

/// Parses a webhook URL and checks what can be checked without DNS.
pub fn parse(url: &str) -> Result<Url, UrlRefused> {
    let parsed = Url::parse(url.trim()).map_err(|e| UrlRefused::Invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(UrlRefused::Scheme);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(UrlRefused::Invalid("the URL has no host".into()));
    }
    Ok(parsed)
}

/// The addresses `url` would be sent to, all of them allowed; refused if any is not (a name
/// mixing public and private answers is refused as a whole).
pub async fn resolve(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, UrlRefused> {
    let port = url.port_or_known_default().unwrap_or(80);
    let host = url
        .host_str()
        .ok_or_else(|| UrlRefused::Invalid("the URL has no host".into()))?;
    // IPv6 literals come bracketed (`[::1]`).
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        // Bounded: a slow resolver must not hold a REST request or a delivery slot for long.
        Err(_) => tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| UrlRefused::Unresolvable(host.to_owned()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(UrlRefused::Unresolvable(
            url.host_str().unwrap_or_default().to_owned(),
        ));
    }
    if let Some(bad) = addrs.iter().find(|a| !allowed(a.ip(), allow_private)) {
        return Err(UrlRefused::Address(bad.ip()));
    }
    Ok(addrs)
}

/// Checks a URL an admin gives for an endpoint: a literal address must be allowed; a name must
/// not resolve to a refused address (a name that does not resolve yet is accepted and checked
/// again at every attempt).
pub async fn check_new(url: &str, allow_private: bool) -> Result<Url, UrlRefused> {
    let parsed = parse(url)?;
    match resolve(&parsed, allow_private).await {
        Ok(_) | Err(UrlRefused::Unresolvable(_)) => Ok(parsed),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn refuses_non_public_addresses() {
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:c0a8:0101::1",
        ] {
            assert!(non_public(ip(bad)), "{bad} must be refused");
            assert!(!allowed(ip(bad), false), "{bad} must be refused");
        }
    }

    #[test]
    fn accepts_public_addresses() {
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(!non_public(ip(good)), "{good} is public");
            assert!(allowed(ip(good), false), "{good} is public");
        }
    }

    #[test]
    fn allowing_private_targets_still_refuses_unspecified_and_multicast() {
        assert!(allowed(ip("127.0.0.1"), true));
        assert!(allowed(ip("10.0.0.1"), true));
        assert!(allowed(ip("::1"), true));
        for never in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
            assert!(!allowed(ip(never), true), "{never}");
        }
    }

    #[test]
    fn parses_only_http_urls_without_credentials() {
        assert!(parse("https://example.com/hook").is_ok());
        assert_eq!(parse("ftp://example.com/").err(), Some(UrlRefused::Scheme));
        assert_eq!(
            parse("https://user:pw@example.com/").err(),
            Some(UrlRefused::Credentials)
        );
        assert!(matches!(parse("not a url"), Err(UrlRefused::Invalid(_))));
    }

    #[tokio::test]
    async fn resolves_and_refuses_loopback_names_unless_allowed() {
        let url = parse("http://127.0.0.1:9/hook").expect("url");
        assert_eq!(
            resolve(&url, false).await,
            Err(UrlRefused::Address(ip("127.0.0.1")))
        );
        let addrs = resolve(&url, true).await.expect("allowed");
        assert_eq!(addrs, vec!["127.0.0.1:9".parse().expect("addr")]);
        let name = parse("http://localhost:9/hook").expect("url");
        assert!(matches!(
            resolve(&name, false).await,
            Err(UrlRefused::Address(_))
        ));
    }
}
