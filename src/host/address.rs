//! What an IP address is, decided once, here, so that policies decide on a name (`class`)
//! instead of parsing addresses.
//!
//! Many IPv6 addresses are an IPv4 address in disguise: a NAT64 translator, a 6to4 or Teredo
//! relay, or the kernel itself (IPv4-mapped) delivers them to the IPv4 address they embed. On a
//! NAT64 network `64:ff9b::a9fe:a9fe` reaches the metadata service at 169.254.169.254, so a
//! block list of IPv4 ranges that does not look inside IPv6 is no block list. [`classify`]
//! therefore finds the embedded IPv4 first and gives the address the class of that IPv4; only
//! an address that embeds none is classified by its own (IPv6) ranges.
//!
//! The ranges are those of the IANA special-purpose address registries (RFC 6890 and the RFCs
//! that added or changed entries since), read through their "Globally Reachable" column: an
//! address is `global` only if no entry says it is not. Entries that IANA marks globally
//! reachable (anycast services such as AS112) stay `global`. A few well-known cloud metadata
//! addresses get a class of their own (`metadata`), whatever range they fall in.
//!
//! What this cannot see: a NAT64 translator with a *network-specific* prefix (any prefix an
//! operator picks, RFC 6052 §2.3) embeds IPv4 addresses in ordinary global IPv6 space; only the
//! operator knows that prefix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use AddressClass::*;

/// The kind of destination an address is, the vocabulary the policy decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    /// This host (127.0.0.0/8, ::1).
    Loopback,
    /// RFC 1918 networks.
    Private,
    /// Link-local (169.254.0.0/16, fe80::/10), metadata addresses excepted.
    LinkLocal,
    /// A cloud provider's instance metadata or platform service (credentials live there).
    Metadata,
    Multicast,
    /// 0.0.0.0 and `::`: on Linux a connection to them reaches this host.
    Unspecified,
    /// Ranges reserved for examples in documentation.
    Documentation,
    /// Reserved, deprecated or special-purpose space that is not globally reachable.
    Reserved,
    /// Carrier-grade NAT space (100.64.0.0/10).
    Shared,
    /// Benchmarking networks (198.18.0.0/15, 2001:2::/48).
    Benchmarking,
    /// IPv6 unique local addresses (fc00::/7).
    UniqueLocal,
    /// Everything else: reachable on the public internet.
    Global,
}

impl AddressClass {
    /// The name the policy sees (`"link-local"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Metadata => "metadata",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
            AddressClass::Shared => "shared",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::Global => "global",
        }
    }
}

impl std::fmt::Display for AddressClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an IPv6 address carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Embedding {
    /// `::ffff:0:0/96` (RFC 4291 §2.5.5.2): the kernel sends it to the IPv4 address itself.
    #[serde(rename = "mapped")]
    Mapped,
    /// `64:ff9b::/96` (RFC 6052) and `64:ff9b:1::/48` (RFC 8215): a NAT64 translator.
    #[serde(rename = "nat64")]
    Nat64,
    /// `2002::/16` (RFC 3056): a 6to4 relay.
    #[serde(rename = "6to4")]
    SixToFour,
    /// `::/96` without `::` and `::1` (RFC 4291 §2.5.5.1, deprecated).
    #[serde(rename = "compatible")]
    Compatible,
    /// `2001::/32` (RFC 4380): a Teredo relay.
    #[serde(rename = "teredo")]
    Teredo,
}

/// An address's class and, when it is an IPv6 spelling of an IPv4 address, which one and how.
/// Serialized as `{"class", "embedded_ipv4", "embedding"}` (the last two `null` for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub class: AddressClass,
    pub embedded_ipv4: Option<Ipv4Addr>,
    pub embedding: Option<Embedding>,
}

/// Classifies `ip`: an address with an embedded IPv4 takes the class of that IPv4.
///
/// Where one IPv6 address can be read as more than one IPv4 address (Teredo names a client
/// and a server; a local-use NAT64 prefix allows several layouts), a reading that is not
/// `global` decides, so a spelling is internal if any way a relay may read it is internal.
pub fn classify(ip: IpAddr) -> Classification {
    let v6 = match ip {
        IpAddr::V4(v4) => {
            return Classification {
                class: classify_v4(v4),
                embedded_ipv4: None,
                embedding: None,
            };
        }
        IpAddr::V6(v6) => v6,
    };
    match embedded_ipv4(v6) {
        Some((embedding, readings)) => {
            let internal = |v4: &&Ipv4Addr| classify_v4(**v4) != AddressClass::Global;
            // A reading in 0.0.0.0/8 is mostly another layout's zero padding: it makes the
            // address internal, but a more telling reading names it.
            let decisive = *readings
                .iter()
                .filter(internal)
                .find(|v4| v4.octets()[0] != 0)
                .or_else(|| readings.iter().find(internal))
                .unwrap_or(&readings[0]);
            Classification {
                class: classify_v4(decisive),
                embedded_ipv4: Some(decisive),
                embedding: Some(embedding),
            }
        }
        None => Classification {
            class: classify_v6(v6),
            embedded_ipv4: None,
            embedding: None,
        },
    }
}

/// The IPv4 addresses `v6` can stand for, most likely reading first, and how it embeds them.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<(Embedding, Vec<Ipv4Addr>)> {
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from(bits as u32);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some((Embedding::Mapped, vec![v4]));
    }
    // IPv4-compatible, RFC 4291 §2.5.5.1: 96 zero bits, then the IPv4 address; `::` and
    // `::1` are the unspecified and loopback addresses, not embeddings.
    if bits >> 32 == 0 && bits > 1 {
        return Some((Embedding::Compatible, vec![low32]));
    }
    // NAT64 well-known prefix, RFC 6052 §2.1: used with the /96 layout only.
    if in_prefix(bits, 0x0064_ff9b << 96, 96) {
        return Some((Embedding::Nat64, vec![low32]));
    }
    // NAT64 local-use prefix, RFC 8215 §3: operators use any RFC 6052 §2.2 layout with a
    // prefix of /48 or longer (/48, /56, /64, /96), and which one is not visible in the
    // address. /96 (the IPv4 in the last 32 bits) is the usual one; every other is read too.
    if in_prefix(bits, (0x0064_ff9b_0001u128) << 80, 48) {
        let readings = [96, 64, 56, 48].map(|len| rfc6052_ipv4(bits, len));
        return Some((Embedding::Nat64, readings.to_vec()));
    }
    // 6to4, RFC 3056 §2: 2002:V4ADDR::/48, the IPv4 address in bits 16..48.
    if in_prefix(bits, 0x2002u128 << 112, 16) {
        return Some((
            Embedding::SixToFour,
            vec![Ipv4Addr::from((bits >> 80) as u32)],
        ));
    }
    // Teredo, RFC 4380 §4: prefix (32 bits), server IPv4 (32), flags (16), port (16), client
    // IPv4 (32), port and client inverted. The relay delivers to the client; the server is
    // contacted too.
    if in_prefix(bits, 0x2001_0000u128 << 96, 32) {
        let client = Ipv4Addr::from(!(bits as u32));
        let server = Ipv4Addr::from((bits >> 64) as u32);
        return Some((Embedding::Teredo, vec![client, server]));
    }
    None
}

/// The IPv4 address RFC 6052 §2.2 places after a prefix of `len` bits (32 to 96, a multiple
/// of 8): 32 bits from bit `len` on, skipping bits 64..72 (the "u" octet). The suffix after
/// it is ignored, as translators extract the address whatever it holds (RFC 6052 §2.3).
fn rfc6052_ipv4(bits: u128, len: u32) -> Ipv4Addr {
    debug_assert!((32..=96).contains(&len) && len.is_multiple_of(8));
    if len == 96 {
        return Ipv4Addr::from(bits as u32);
    }
    // The 120 bits left without the u octet: bits 0..64, then bits 72..128.
    let without_u = ((bits >> 64) << 56) | (bits & ((1u128 << 56) - 1));
    Ipv4Addr::from((without_u >> (88 - len)) as u32)
}

fn in_prefix(bits: u128, prefix: u128, len: u32) -> bool {
    (bits ^ prefix) >> (128 - len) == 0
}

/// A range of the address space: `len` leading bits of `prefix`, their class, and where the
/// range is defined. The first range that contains an address decides its class.
struct Range<T> {
    prefix: T,
    len: u32,
    class: AddressClass,
}

const fn v4(prefix: [u8; 4], len: u32, class: AddressClass) -> Range<u32> {
    Range {
        prefix: u32::from_be_bytes(prefix),
        len,
        class,
    }
}

const fn v6(prefix: [u16; 8], len: u32, class: AddressClass) -> Range<u128> {
    let mut bits = 0u128;
    let mut i = 0;
    while i < 8 {
        bits = (bits << 16) | prefix[i] as u128;
        i += 1;
    }
    Range {
        prefix: bits,
        len,
        class,
    }
}

/// Well-known cloud metadata and platform addresses (IPv4), checked before every range.
const METADATA_V4: &[Range<u32>] = &[
    // AWS (IMDS), Azure (IMDS), Google Cloud, Oracle Cloud, OpenStack, DigitalOcean,
    // Hetzner, …: the common instance metadata address.
    v4([169, 254, 169, 254], 32, Metadata),
    // AWS ECS task metadata and container credentials endpoint.
    v4([169, 254, 170, 2], 32, Metadata),
    // AWS EKS Pod Identity Agent.
    v4([169, 254, 170, 23], 32, Metadata),
    // Alibaba Cloud ECS metadata (inside the shared 100.64.0.0/10).
    v4([100, 100, 100, 200], 32, Metadata),
    // Azure WireServer / host platform ("What is IP address 168.63.129.16?"): a public
    // address that only the Azure host answers; it serves VM extension settings.
    v4([168, 63, 129, 16], 32, Metadata),
    // Oracle Cloud Infrastructure Classic metadata (inside 192.0.0.0/24).
    v4([192, 0, 0, 192], 32, Metadata),
    // Scaleway instance metadata.
    v4([169, 254, 42, 42], 32, Metadata),
];

/// Well-known cloud metadata addresses (IPv6), all inside fc00::/7.
const METADATA_V6: &[Range<u128>] = &[
    // AWS IMDS over IPv6 (Nitro instances).
    v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128, Metadata),
    // AWS EKS Pod Identity Agent over IPv6.
    v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23], 128, Metadata),
    // Google Cloud metadata server over IPv6.
    v6([0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254], 128, Metadata),
    // Scaleway instance metadata over IPv6.
    v6([0xfd00, 0x42, 0, 0, 0, 0, 0, 0x42], 128, Metadata),
];

/// IPv4: the IANA IPv4 Special-Purpose Address Registry (RFC 6890 §2.2.2 and later RFCs),
/// plus multicast and the former class E space. Order matters: exceptions come first.
const RANGES_V4: &[Range<u32>] = &[
    // "This host on this network", RFC 1122 §3.2.1.3; Linux connects it to this host.
    v4([0, 0, 0, 0], 32, Unspecified),
    // "This network", RFC 791 §3.2 / RFC 6890.
    v4([0, 0, 0, 0], 8, Reserved),
    // Private-Use, RFC 1918.
    v4([10, 0, 0, 0], 8, Private),
    // Shared Address Space (carrier-grade NAT), RFC 6598.
    v4([100, 64, 0, 0], 10, Shared),
    // Loopback, RFC 1122 §3.2.1.3.
    v4([127, 0, 0, 0], 8, Loopback),
    // Link Local, RFC 3927.
    v4([169, 254, 0, 0], 16, LinkLocal),
    // Private-Use, RFC 1918.
    v4([172, 16, 0, 0], 12, Private),
    // Port Control Protocol anycast, RFC 7723, and TURN anycast, RFC 8155: globally
    // reachable inside 192.0.0.0/24.
    v4([192, 0, 0, 9], 32, Global),
    v4([192, 0, 0, 10], 32, Global),
    // IETF Protocol Assignments, RFC 6890 §2.2.2: DS-Lite (192.0.0.0/29, RFC 7335), IPv4
    // dummy address (192.0.0.8, RFC 7600), NAT64/DNS64 discovery (192.0.0.170-171,
    // RFC 7050), …
    v4([192, 0, 0, 0], 24, Reserved),
    // Documentation (TEST-NET-1), RFC 5737.
    v4([192, 0, 2, 0], 24, Documentation),
    // 6to4 Relay Anycast, RFC 3068, deprecated by RFC 7526.
    v4([192, 88, 99, 0], 24, Reserved),
    // Private-Use, RFC 1918.
    v4([192, 168, 0, 0], 16, Private),
    // Benchmarking, RFC 2544.
    v4([198, 18, 0, 0], 15, Benchmarking),
    // Documentation (TEST-NET-2, TEST-NET-3), RFC 5737.
    v4([198, 51, 100, 0], 24, Documentation),
    v4([203, 0, 113, 0], 24, Documentation),
    // Multicast, RFC 5771 (MCAST-TEST-NET 233.252.0.0/24 of RFC 6676 included).
    v4([224, 0, 0, 0], 4, Multicast),
    // Reserved (former class E), RFC 1112 §4, with the limited broadcast address
    // 255.255.255.255 (RFC 919, RFC 8190).
    v4([240, 0, 0, 0], 4, Reserved),
    // AS112-v4 (192.31.196.0/24, RFC 7535), AMT (192.52.193.0/24, RFC 7450) and Direct
    // Delegation AS112 (192.175.48.0/24, RFC 7534) are globally reachable: no entry.
];

/// IPv6 addresses that embed no IPv4: the IANA IPv6 Special-Purpose Address Registry
/// (RFC 6890 §2.2.3 and later RFCs) and the IANA IPv6 Address Space registry, where
/// everything outside 2000::/3, fc00::/7, fe80::/10 and ff00::/8 is reserved by the IETF.
const RANGES_V6: &[Range<u128>] = &[
    // Unspecified Address, RFC 4291 §2.5.2.
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, Unspecified),
    // Loopback Address, RFC 4291 §2.5.3.
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, Loopback),
    // Discard-Only Address Block, RFC 6666.
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, Reserved),
    // Dummy IPv6 Prefix, RFC 9780.
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, Reserved),
    // Globally reachable anycast services inside 2001::/23: Port Control Protocol (RFC 7723),
    // TURN (RFC 8155), DNS-SD Service Registration Protocol (RFC 9665).
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, Global),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, Global),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, Global),
    // Benchmarking, RFC 5180 (corrected by RFC Errata 1752).
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, Benchmarking),
    // AMT, RFC 7450; AS112-v6, RFC 7535: globally reachable.
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, Global),
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, Global),
    // ORCHIDv2 (RFC 7343) and Drone Remote ID Protocol Entity Tags (RFC 9374): globally
    // reachable. The deprecated ORCHID 2001:10::/28 (RFC 4843) falls through to reserved.
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, Global),
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, Global),
    // IETF Protocol Assignments, RFC 2928 (Teredo, 2001::/32, embeds IPv4 and is read above).
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Reserved),
    // Documentation, RFC 3849 and RFC 9637.
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Documentation),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Documentation),
    // Global Unicast, RFC 4291 §2.5.4 (Direct Delegation AS112, 2620:4f:8000::/48, RFC 7534,
    // is globally reachable and lies inside).
    v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3, Global),
    // Unique-Local, RFC 4193.
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, UniqueLocal),
    // Link-Local Unicast, RFC 4291 §2.5.6.
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, LinkLocal),
    // Multicast, RFC 4291 §2.7.
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Multicast),
    // Everything else is reserved by the IETF (IANA IPv6 Address Space): the rest of ::/8
    // (including SIIT's ::ffff:0:0:0/96, RFC 2765), site-local fec0::/10 (deprecated by
    // RFC 3879), Segment Routing SIDs 5f00::/16 (RFC 9602), …
    v6([0, 0, 0, 0, 0, 0, 0, 0], 0, Reserved),
];

fn lookup<T>(ranges: &[Range<T>], address: T, bits: u32) -> Option<AddressClass>
where
    T: Copy + std::ops::BitXor<Output = T> + std::ops::Shr<u32, Output = T> + PartialEq + Default,
{
    ranges
        .iter()
        .find(|r| r.len == 0 || (address ^ r.prefix) >> (bits - r.len) == T::default())
        .map(|r| r.class)
}

/// The class of an IPv4 address.
pub fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let bits = u32::from(ip);
    lookup(METADATA_V4, bits, 32)
        .or_else(|| lookup(RANGES_V4, bits, 32))
        .unwrap_or(Global)
}

/// The class of an IPv6 address by its own ranges (see [`classify`] for embedded IPv4).
fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let bits = u128::from(ip);
    lookup(METADATA_V6, bits, 128)
        .or_else(|| lookup(RANGES_V6, bits, 128))
        .unwrap_or(Reserved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> AddressClass {
        classify(ip.parse().unwrap()).class
    }

    fn embedded(ip: &str) -> (Option<Embedding>, Option<Ipv4Addr>, AddressClass) {
        let c = classify(ip.parse().unwrap());
        (c.embedding, c.embedded_ipv4, c.class)
    }

    fn check(cases: &[(&str, AddressClass)]) {
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(ip, expected)| class(ip) != *expected)
            .map(|(ip, expected)| format!("{ip}: expected {expected}, got {}", class(ip)))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn ipv4_special_purpose_ranges() {
        check(&[
            ("0.0.0.0", Unspecified),
            ("0.0.0.1", Reserved),
            ("0.255.255.255", Reserved),
            ("1.0.0.0", Global),
            ("10.0.0.0", Private),
            ("10.255.255.255", Private),
            ("11.0.0.0", Global),
            ("100.63.255.255", Global),
            ("100.64.0.0", Shared),
            ("100.127.255.255", Shared),
            ("100.128.0.0", Global),
            ("126.255.255.255", Global),
            ("127.0.0.1", Loopback),
            ("127.255.255.255", Loopback),
            ("169.253.255.255", Global),
            ("169.254.0.0", LinkLocal),
            ("169.254.255.255", LinkLocal),
            ("172.15.255.255", Global),
            ("172.16.0.0", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Global),
            ("192.0.0.0", Reserved),
            ("192.0.0.8", Reserved),
            ("192.0.0.9", Global),
            ("192.0.0.10", Global),
            ("192.0.0.170", Reserved),
            ("192.0.0.255", Reserved),
            ("192.0.2.0", Documentation),
            ("192.0.2.255", Documentation),
            ("192.0.3.0", Global),
            ("192.31.196.1", Global),
            ("192.52.193.1", Global),
            ("192.88.99.1", Reserved),
            ("192.167.255.255", Global),
            ("192.168.0.0", Private),
            ("192.168.255.255", Private),
            ("192.175.48.1", Global),
            ("198.17.255.255", Global),
            ("198.18.0.0", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("198.20.0.0", Global),
            ("198.51.100.7", Documentation),
            ("203.0.113.7", Documentation),
            ("203.0.114.0", Global),
            ("223.255.255.255", Global),
            ("224.0.0.1", Multicast),
            ("233.252.0.1", Multicast),
            ("239.255.255.255", Multicast),
            ("240.0.0.0", Reserved),
            ("255.255.255.255", Reserved),
            ("93.184.215.14", Global),
            ("8.8.8.8", Global),
        ]);
    }

    #[test]
    fn metadata_addresses_win_over_their_ranges() {
        check(&[
            ("169.254.169.254", Metadata),
            ("169.254.169.253", LinkLocal),
            ("169.254.170.2", Metadata),
            ("169.254.170.23", Metadata),
            ("169.254.42.42", Metadata),
            ("100.100.100.200", Metadata),
            ("100.100.100.201", Shared),
            ("168.63.129.16", Metadata),
            ("168.63.129.17", Global),
            ("192.0.0.192", Metadata),
            ("fd00:ec2::254", Metadata),
            ("fd00:ec2::23", Metadata),
            ("fd00:ec2::253", UniqueLocal),
            ("fd20:ce::254", Metadata),
            ("fd00:42::42", Metadata),
        ]);
    }

    #[test]
    fn ipv6_special_purpose_ranges() {
        check(&[
            ("::", Unspecified),
            ("::1", Loopback),
            ("100::", Reserved),
            ("100::ffff:ffff:ffff:ffff", Reserved),
            ("100:0:0:1::1", Reserved),
            ("2001:1::1", Global),
            ("2001:1::2", Global),
            ("2001:1::3", Global),
            ("2001:1::4", Reserved),
            ("2001:2::", Benchmarking),
            ("2001:2:0:ffff::1", Benchmarking),
            ("2001:2:1::", Reserved),
            ("2001:3::1", Global),
            ("2001:4:112::1", Global),
            ("2001:10::1", Reserved),
            ("2001:20::1", Global),
            ("2001:30::1", Global),
            ("2001:1ff:ffff::1", Reserved),
            ("2001:200::1", Global),
            ("2001:db8::1", Documentation),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Documentation),
            ("2001:db9::1", Global),
            ("3fff::1", Documentation),
            ("3fff:fff::1", Documentation),
            ("3fff:1000::1", Global),
            ("2620:4f:8000::1", Global),
            ("2606:4700:4700::1111", Global),
            ("3fff:ffff::1", Global),
            ("4000::1", Reserved),
            ("5f00::1", Reserved),
            ("fc00::1", UniqueLocal),
            ("fdff:ffff::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("febf:ffff::1", LinkLocal),
            ("fec0::1", Reserved),
            ("ff02::1", Multicast),
            ("ff0e::1", Multicast),
            ("::ffff:0:7f00:1", Reserved),
        ]);
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address() {
        let loopback = Ipv4Addr::new(127, 0, 0, 1);
        assert_eq!(
            embedded("::ffff:127.0.0.1"),
            (Some(Embedding::Mapped), Some(loopback), Loopback)
        );
        assert_eq!(class("::ffff:169.254.169.254"), Metadata);
        assert_eq!(class("::ffff:8.8.8.8"), Global);
    }

    #[test]
    fn nat64_well_known_prefix_embeds_the_last_32_bits() {
        let loopback = Ipv4Addr::new(127, 0, 0, 1);
        assert_eq!(
            embedded("64:ff9b::7f00:1"),
            (Some(Embedding::Nat64), Some(loopback), Loopback)
        );
        assert_eq!(class("64:ff9b::a9fe:a9fe"), Metadata);
        assert_eq!(class("64:ff9b::10.1.2.3"), Private);
        assert_eq!(
            embedded("64:ff9b::5db8:d70e"),
            (
                Some(Embedding::Nat64),
                Some(Ipv4Addr::new(93, 184, 215, 14)),
                Global
            )
        );
        // Outside the /96 the well-known prefix embeds nothing: reserved ::/8 space.
        assert_eq!(embedded("64:ff9b:0:1::7f00:1").0, None);
        assert_eq!(class("64:ff9b:0:1::7f00:1"), Reserved);
    }

    #[test]
    fn nat64_local_use_prefix_is_read_in_every_layout() {
        let loopback = Ipv4Addr::new(127, 0, 0, 1);
        // The /96 layout (IPv4 in the last 32 bits), the usual one.
        assert_eq!(
            embedded("64:ff9b:1::7f00:1"),
            (Some(Embedding::Nat64), Some(loopback), Loopback)
        );
        assert_eq!(class("64:ff9b:1::a9fe:a9fe"), Metadata);
        assert_eq!(class("64:ff9b:1:ffff:ffff:ffff:7f00:1"), Loopback);
        // RFC 6052 §2.2 layouts, 127.0.0.1 after a /48, /56 and /64 prefix (u octet zero):
        // /48: bits 48..64 = 7f00, bits 72..88 = 0001.
        assert_eq!(
            embedded("64:ff9b:1:7f00:0:100::"),
            (Some(Embedding::Nat64), Some(loopback), Loopback)
        );
        // /56: bits 56..64 = 7f, bits 72..96 = 000001.
        assert_eq!(
            embedded("64:ff9b:1:7f:0:1::"),
            (Some(Embedding::Nat64), Some(loopback), Loopback)
        );
        // /64: bits 72..104 = 7f000001.
        assert_eq!(
            embedded("64:ff9b:1:0:7f:0:100:0"),
            (Some(Embedding::Nat64), Some(loopback), Loopback)
        );
        // Translators ignore the suffix, so a non-zero one hides nothing; nor does the
        // operator's part of the prefix.
        assert_eq!(
            embedded("64:ff9b:1:0:7f:0:1ad:beef"),
            (Some(Embedding::Nat64), Some(loopback), Loopback)
        );
        assert_eq!(
            embedded("64:ff9b:1:abcd:7f:0:100:0"),
            (Some(Embedding::Nat64), Some(loopback), Loopback)
        );
        // A global IPv4 in the /96 layout is still read as 0.0.0.93 by the /64 layout: a
        // local-use address is global only when every layout reads a global address.
        assert_eq!(
            embedded("64:ff9b:1::5db8:d70e"),
            (
                Some(Embedding::Nat64),
                Some(Ipv4Addr::new(0, 0, 0, 93)),
                Reserved
            )
        );
        assert_eq!(class("64:ff9b:1:808:8:808:808:808"), Global);
        // Just outside the /48.
        assert_eq!(embedded("64:ff9b:2::7f00:1").0, None);
    }

    #[test]
    fn six_to_four_embeds_bits_16_to_48() {
        assert_eq!(
            embedded("2002:7f00:1::"),
            (
                Some(Embedding::SixToFour),
                Some(Ipv4Addr::new(127, 0, 0, 1)),
                Loopback
            )
        );
        assert_eq!(class("2002:a9fe:a9fe::1"), Metadata);
        assert_eq!(class("2002:c0a8:101:1::1"), Private);
        assert_eq!(class("2002:808:808::1"), Global);
        assert_eq!(class("2003::1"), Global);
    }

    #[test]
    fn ipv4_compatible_addresses_embed_the_last_32_bits() {
        assert_eq!(
            embedded("::7f00:1"),
            (
                Some(Embedding::Compatible),
                Some(Ipv4Addr::new(127, 0, 0, 1)),
                Loopback
            )
        );
        assert_eq!(class("::a9fe:a9fe"), Metadata);
        assert_eq!(class("::808:808"), Global);
        // 0.0.0.2 is in "this network".
        assert_eq!(embedded("::2").0, Some(Embedding::Compatible));
        assert_eq!(class("::2"), Reserved);
        // `::` and `::1` are themselves.
        assert_eq!(embedded("::").0, None);
        assert_eq!(embedded("::1").0, None);
    }

    #[test]
    fn teredo_embeds_the_inverted_client_and_the_server() {
        // Server 65.54.227.120, flags 0x8000, port 40000 inverted, client 127.0.0.1 inverted.
        assert_eq!(
            embedded("2001:0:4136:e378:8000:63bf:80ff:fffe"),
            (
                Some(Embedding::Teredo),
                Some(Ipv4Addr::new(127, 0, 0, 1)),
                Loopback
            )
        );
        assert_eq!(class("2001:0:4136:e378:8000:63bf:5601:5601"), Metadata);
        // Both global: the client is reported.
        assert_eq!(
            embedded("2001:0:4136:e378:8000:63bf:a247:28f1"),
            (
                Some(Embedding::Teredo),
                Some(Ipv4Addr::new(93, 184, 215, 14)),
                Global
            )
        );
        // A global client behind an internal server is internal too.
        assert_eq!(
            embedded("2001:0:a00:1:8000:63bf:a247:28f1"),
            (
                Some(Embedding::Teredo),
                Some(Ipv4Addr::new(10, 0, 0, 1)),
                Private
            )
        );
    }

    #[test]
    fn serializes_as_the_policy_reads_it() {
        let json = serde_json::to_value(classify("64:ff9b::7f00:1".parse().unwrap())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"class": "loopback", "embedded_ipv4": "127.0.0.1", "embedding": "nat64"})
        );
        let json = serde_json::to_value(classify("2002:808:808::".parse().unwrap())).unwrap();
        assert_eq!(json["embedding"], "6to4");
        let json = serde_json::to_value(classify("fe80::1".parse().unwrap())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"class": "link-local", "embedded_ipv4": null, "embedding": null})
        );
        for class in [
            Loopback,
            Private,
            LinkLocal,
            Metadata,
            Multicast,
            Unspecified,
            Documentation,
            Reserved,
            Shared,
            Benchmarking,
            UniqueLocal,
            Global,
        ] {
            assert_eq!(serde_json::to_value(class).unwrap(), class.as_str());
        }
    }
}
