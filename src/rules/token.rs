//! Settings of the token detector kinds, as rule data: `token_origin` (a token used from
//! somewhere it was not issued) and `wrap_token` (a response-wrapping token unwrapped by
//! someone else first), and the ingredient they build on, a way to compare an address with
//! a network ([`NetworkSpec`]: the address's network at a prefix length per family) or with
//! a CIDR list ([`AddressSet`]: literal, or the config's `identities.workload_cidrs`).
//!
//! Nothing here runs: the engine's `detect::token_origin` and `detect::wrap_token` do.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::condition::{Condition, IdentityClass};
use crate::config::{cidr_list, Config};
use crate::yaml::{self, Ctx, MapReader, Node};

/// The network of an address at a prefix length per family (`network:` in a detector):
/// two addresses are in the same network when their prefixes agree. Defaults: /24 for
/// IPv4, /64 for IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkSpec {
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl Default for NetworkSpec {
    fn default() -> NetworkSpec {
        NetworkSpec {
            ipv4_prefix: 24,
            ipv6_prefix: 64,
        }
    }
}

impl NetworkSpec {
    /// The network `ip` belongs to (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn network(&self, ip: IpAddr) -> IpNet {
        match ip.to_canonical() {
            IpAddr::V4(a) => IpNet::V4(
                Ipv4Net::new(a, self.ipv4_prefix.min(32))
                    .expect("a prefix of at most 32")
                    .trunc(),
            ),
            IpAddr::V6(a) => IpNet::V6(
                Ipv6Net::new(a, self.ipv6_prefix.min(128))
                    .expect("a prefix of at most 128")
                    .trunc(),
            ),
        }
    }

    /// Whether two addresses are in the same network (never across families).
    pub fn same(&self, a: IpAddr, b: IpAddr) -> bool {
        self.network(a) == self.network(b)
    }
}

/// A set of networks an address is compared with: a literal CIDR list, or the config's
/// `identities.workload_cidrs` (so one rule serves every platform).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressSet {
    Cidrs(Vec<IpNet>),
    WorkloadCidrs,
}

impl AddressSet {
    /// The networks, under a config.
    pub fn nets<'a>(&'a self, cfg: &'a Config) -> &'a [IpNet] {
        match self {
            AddressSet::Cidrs(v) => v,
            AddressSet::WorkloadCidrs => &cfg.identities.workload_cidrs,
        }
    }

    /// Whether `ip` is in one of the networks.
    pub fn contains(&self, cfg: &Config, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets(cfg).iter().any(|n| n.contains(&ip))
    }
}

/// Identities judged by where they may be (workloads: pods and nodes), not by where their
/// token was issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub identity: Vec<IdentityClass>,
    pub within: AddressSet,
}

/// Settings of a `token_origin` detector.
#[derive(Clone, Debug)]
pub struct TokenOriginSpec {
    pub network: NetworkSpec,
    /// When set (and its address set is not empty), tokens of these identities are foreign
    /// only outside the set, whatever network issued them.
    pub workload: Option<WorkloadSpec>,
    /// A foreign use for which this holds is at least `critical` (it read or minted a
    /// secret), and is reported even after the token's first foreign use was.
    pub escalate: Option<Condition>,
    pub max_keys: u64,
    pub expire_after_secs: u64,
}

/// Settings of a `wrap_token` detector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapTokenSpec {
    pub max_keys: u64,
    pub expire_after_secs: u64,
}

/// Token max TTL of a default Vault (768 h): a token idle longer is gone.
const DEFAULT_TOKEN_EXPIRE_SECS: u64 = 768 * 3600;
/// Wrapping tokens and what is known about their unwrap: a week.
const DEFAULT_WRAP_EXPIRE_SECS: u64 = 7 * 24 * 3600;

/// `network: {ipv4_prefix: 24, ipv6_prefix: 64}` (either may be left out).
pub fn decode_network(ctx: &mut Ctx, node: &Node) -> Option<NetworkSpec> {
    let mut m = MapReader::new(ctx, node, "network")?;
    let mut spec = NetworkSpec::default();
    let mut ok = true;
    for (key, max) in [("ipv4_prefix", 32), ("ipv6_prefix", 128)] {
        if let Some(n) = m.take(key) {
            match yaml::uint_at_most(ctx, n, key, max) {
                Some(v) if key == "ipv4_prefix" => spec.ipv4_prefix = v as u8,
                Some(v) => spec.ipv6_prefix = v as u8,
                None => ok = false,
            }
        }
    }
    m.finish(ctx, "network");
    ok.then_some(spec)
}

/// `within: workload_cidrs` or a CIDR list.
pub fn decode_address_set(ctx: &mut Ctx, node: &Node, what: &str) -> Option<AddressSet> {
    if let Some(s) = yaml::scalar_str(node) {
        if s == "workload_cidrs" {
            return Some(AddressSet::WorkloadCidrs);
        }
        if s.parse::<IpNet>().is_err() && s.parse::<IpAddr>().is_err() {
            ctx.error(
                node,
                format!("{what} must be `workload_cidrs` (the config's identities.workload_cidrs) or a list of CIDRs, found `{s}`"),
            );
            return None;
        }
    }
    let before = ctx.problems.len();
    let nets = cidr_list(ctx, node, what);
    (ctx.problems.len() == before).then_some(AddressSet::Cidrs(nets))
}

fn decode_workload(ctx: &mut Ctx, node: &Node) -> Option<WorkloadSpec> {
    let mut m = MapReader::new(ctx, node, "workload")?;
    let identity = m.require(ctx, "identity", "workload").and_then(|n| {
        let items: Vec<&Node> = match &n.data {
            saphyr::YamlDataOwned::Sequence(items) => items.iter().collect(),
            _ => vec![n],
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            let Some(name) = yaml::string(ctx, item, "workload.identity") else {
                ok = false;
                continue;
            };
            match IdentityClass::parse(&name) {
                Some(c) => out.push(c),
                None => {
                    let all: Vec<_> = IdentityClass::ALL.iter().map(|c| c.as_str()).collect();
                    ctx.error(
                        item,
                        format!(
                            "unknown identity class `{name}`; expected one of: {}",
                            all.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    });
    let within = m
        .require(ctx, "within", "workload")
        .and_then(|n| decode_address_set(ctx, n, "workload.within"));
    m.finish(ctx, "workload");
    Some(WorkloadSpec {
        identity: identity?,
        within: within?,
    })
}

/// The fields of a `token_origin` detector (its `kind` already read).
pub fn decode_token_origin(m: &mut MapReader, ctx: &mut Ctx) -> Option<TokenOriginSpec> {
    let network = match m.take("network") {
        Some(n) => decode_network(ctx, n),
        None => Some(NetworkSpec::default()),
    };
    let workload = match m.take("workload") {
        Some(n) => decode_workload(ctx, n).map(Some),
        None => Some(None),
    };
    let escalate = match m.take("escalate") {
        Some(n) => Condition::decode(ctx, n).map(|mut c| {
            c.optimise();
            Some(c)
        }),
        None => Some(None),
    };
    let mk = m.positive_or(ctx, "max_keys", super::DEFAULT_MAX_KEYS);
    let exp = m.positive_or(ctx, "expire_after_secs", DEFAULT_TOKEN_EXPIRE_SECS);
    Some(TokenOriginSpec {
        network: network?,
        workload: workload?,
        escalate: escalate?,
        max_keys: mk?,
        expire_after_secs: exp?,
    })
}

/// The fields of a `wrap_token` detector (its `kind` already read).
pub fn decode_wrap_token(m: &mut MapReader, ctx: &mut Ctx) -> Option<WrapTokenSpec> {
    let mk = m.positive_or(ctx, "max_keys", super::DEFAULT_MAX_KEYS);
    let exp = m.positive_or(ctx, "expire_after_secs", DEFAULT_WRAP_EXPIRE_SECS);
    Some(WrapTokenSpec {
        max_keys: mk?,
        expire_after_secs: exp?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_compare_by_network_at_the_prefix_of_their_family() {
        let n = NetworkSpec::default();
        assert!(n.same(ip("10.1.2.3"), ip("10.1.2.250")));
        assert!(!n.same(ip("10.1.2.3"), ip("10.1.3.3")));
        assert_eq!(n.network(ip("10.1.2.3")).to_string(), "10.1.2.0/24");
        assert!(n.same(ip("2001:db8::1"), ip("2001:db8::ffff:1")));
        assert!(!n.same(ip("2001:db8:0:1::1"), ip("2001:db8:0:2::1")));
        assert!(
            n.same(ip("::ffff:10.1.2.3"), ip("10.1.2.9")),
            "an IPv4-mapped address is IPv4"
        );
        assert!(!n.same(ip("10.1.2.3"), ip("::1")), "never across families");
        let wide = NetworkSpec {
            ipv4_prefix: 16,
            ipv6_prefix: 48,
        };
        assert!(wide.same(ip("10.1.2.3"), ip("10.1.200.3")));
        let exact = NetworkSpec {
            ipv4_prefix: 32,
            ipv6_prefix: 128,
        };
        assert!(!exact.same(ip("10.1.2.3"), ip("10.1.2.4")));
    }

    fn decode<T>(
        text: &str,
        f: impl FnOnce(&mut Ctx, &Node) -> Option<T>,
    ) -> Result<T, Vec<(usize, usize, String)>> {
        let mut ctx = Ctx::new("t.yaml");
        let node = ctx.load(text).expect("yaml");
        let got = f(&mut ctx, &node);
        match got {
            Some(v) if ctx.problems.is_empty() => Ok(v),
            _ => Err(ctx
                .problems
                .iter()
                .map(|p| (p.line, p.col, p.message.clone()))
                .collect()),
        }
    }

    #[test]
    fn networks_and_address_sets_are_read_and_bad_values_placed() {
        let n = decode("{ipv4_prefix: 16}", decode_network).unwrap();
        assert_eq!((n.ipv4_prefix, n.ipv6_prefix), (16, 64));
        let e = decode("{ipv4_prefix: 33, ipv6_prefx: 48}", decode_network).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!((e[0].0, e[0].1), (1, 15), "{e:?}");
        assert!(e[1].2.contains("ipv6_prefx"), "{e:?}");
        let s = |t: &str| decode(t, |c, n| decode_address_set(c, n, "within"));
        assert_eq!(s("workload_cidrs").unwrap(), AddressSet::WorkloadCidrs);
        assert_eq!(
            s("[10.42.0.0/16, 10.0.0.5]").unwrap(),
            AddressSet::Cidrs(vec![
                "10.42.0.0/16".parse().unwrap(),
                "10.0.0.5/32".parse().unwrap()
            ])
        );
        let e = s("workload-cidrs").unwrap_err();
        assert!(e[0].2.contains("must be `workload_cidrs`"), "{e:?}");
        assert!(s("[10.42.0.0/33]").is_err());
    }
}
