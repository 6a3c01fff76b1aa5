//! `whtnxt://` invite links (DESIGN.md §2): one parser and one formatter.
//!
//! ```text
//! whtnxt://connect/<peerId>?addr=<multiaddr>&addr=…&relay=<multiaddr>&session=<id>&key=<secret>
//! ```
//!
//! Rules, all round-trip tested:
//! * The scheme and the action (`connect`) are case-insensitive; everything else is
//!   case-sensitive (peer ids are base58, multiaddrs and secrets are exact).
//! * Query values are percent-decoded (`%2F` → `/`); `+` is a literal plus, not a space.
//!   The formatter percent-encodes every byte outside `A–Z a–z 0–9 - . _ ~ / :`.
//! * `addr` and `relay` may repeat (at most [`MAX_LINK_ADDRS`] and [`MAX_LINK_RELAYS`]
//!   times); `session` and `key` may appear once. Unknown parameters are ignored, so older
//!   apps accept links from newer ones.
//! * An `addr` may end in `/p2p/<peerId>` only if that is the link's peer.
//! * The parser is total: every input gives a link or a [`LinkError`] naming the bad part.

use std::{fmt, str::FromStr};

use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

pub const SCHEME: &str = "whtnxt";

/// Bytes the formatter escapes in query values: all but unreserved characters and `/ :`.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b':');

/// Longest link accepted, so a hostile link cannot make us parse megabytes.
pub const MAX_LINK_LEN: usize = 8 * 1024;

/// Most `addr=` a link may carry. Each one becomes a dial (and, when it fails, an error in
/// the state and the output), so a link that fits in [`MAX_LINK_LEN`] with hundreds of short
/// addresses would otherwise fan out into a dial storm and kilobytes of errors. An invite
/// made by this app holds the best ones first and never more.
pub const MAX_LINK_ADDRS: usize = 16;

/// Most `relay=` a link may carry, for the same reason.
pub const MAX_LINK_RELAYS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteLink {
    pub peer_id: PeerId,
    /// Direct addresses to dial, in the order to try them.
    pub addrs: Vec<Multiaddr>,
    /// Relay nodes through which the peer can be reached.
    pub relays: Vec<Multiaddr>,
    /// The shared playlist/session the link admits to.
    pub session: Option<String>,
    /// Capability secret for `session`.
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is empty")]
    Empty,
    #[error("the link is {0} bytes long; links longer than {MAX_LINK_LEN} bytes are refused")]
    TooLong(usize),
    #[error("the link must start with whtnxt:// (got {0:?})")]
    Scheme(String),
    #[error("unknown link action {0:?}; this version understands whtnxt://connect/…")]
    Action(String),
    #[error("the link has no peer id after whtnxt://connect/")]
    MissingPeerId,
    #[error("{value:?} in the link is not a valid peer id: {reason}")]
    PeerId { value: String, reason: String },
    #[error("parameter {param} is not valid percent-encoded UTF-8")]
    Encoding { param: String },
    #[error("{param}={value:?} is not a valid multiaddr: {reason}")]
    Multiaddr {
        param: &'static str,
        value: String,
        reason: String,
    },
    #[error("{param}={value:?} names peer {found}, but the link is for {expected}")]
    PeerMismatch {
        param: &'static str,
        value: String,
        found: String,
        expected: String,
    },
    #[error("parameter {0} appears more than once")]
    Repeated(&'static str),
    #[error("parameter {0} is empty")]
    EmptyValue(&'static str),
    #[error(
        "the link has {count} {param}= parameters; at most {max} are accepted. Ask the sender for a new link (`whatnext invite` makes one)"
    )]
    TooManyAddrs {
        param: &'static str,
        count: usize,
        max: usize,
    },
}

impl InviteLink {
    pub fn new(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            addrs: Vec::new(),
            relays: Vec::new(),
            session: None,
            key: None,
        }
    }

    /// True when the link carries no address: the peer must be found by discovery
    /// (mDNS on the LAN, or the DHT), as with the upstream app's peer-id-only links.
    pub fn needs_discovery(&self) -> bool {
        self.addrs.is_empty() && self.relays.is_empty()
    }

    /// Every address to dial, direct ones first, then relay circuits, each ending in
    /// `/p2p/<peer>`.
    pub fn dial_addrs(&self) -> Vec<Multiaddr> {
        let direct = self.addrs.iter().cloned();
        let circuits = self
            .relays
            .iter()
            .map(|relay| relay.clone().with(Protocol::P2pCircuit));
        direct
            .chain(circuits)
            .map(|addr| addr.with(Protocol::P2p(self.peer_id)))
            .collect()
    }
}

impl fmt::Display for InviteLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}://connect/{}", self.peer_id)?;
        let mut sep = '?';
        let mut param = |f: &mut fmt::Formatter<'_>, name: &str, value: &str| {
            let result = write!(f, "{sep}{name}={}", utf8_percent_encode(value, VALUE));
            sep = '&';
            result
        };
        for addr in &self.addrs {
            param(f, "addr", &addr.to_string())?;
        }
        for relay in &self.relays {
            param(f, "relay", &relay.to_string())?;
        }
        if let Some(session) = &self.session {
            param(f, "session", session)?;
        }
        if let Some(key) = &self.key {
            param(f, "key", key)?;
        }
        Ok(())
    }
}

impl FromStr for InviteLink {
    type Err = LinkError;

    fn from_str(input: &str) -> Result<Self, LinkError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(LinkError::Empty);
        }
        if input.len() > MAX_LINK_LEN {
            return Err(LinkError::TooLong(input.len()));
        }
        let rest = match input.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(SCHEME) => rest,
            _ => return Err(LinkError::Scheme(prefix(input))),
        };
        // Fragments carry nothing for us.
        let rest = rest.split('#').next().unwrap_or("");
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (action, peer) = path.split_once('/').unwrap_or((path, ""));
        if !action.eq_ignore_ascii_case("connect") {
            return Err(LinkError::Action(prefix(action)));
        }
        let peer = peer.strip_suffix('/').unwrap_or(peer);
        if peer.is_empty() {
            return Err(LinkError::MissingPeerId);
        }
        let peer_text = decode("peer id", peer)?;
        let peer_id = PeerId::from_str(&peer_text).map_err(|err| LinkError::PeerId {
            value: prefix(&peer_text),
            reason: err.to_string(),
        })?;

        let pairs = || query.split('&').filter(|p| !p.is_empty());
        // Counted before anything is parsed, so the error names the real count.
        for (param, max) in [("addr", MAX_LINK_ADDRS), ("relay", MAX_LINK_RELAYS)] {
            let count = pairs()
                .filter(|pair| pair.split_once('=').map_or(*pair, |(name, _)| name) == param)
                .count();
            if count > max {
                return Err(LinkError::TooManyAddrs { param, count, max });
            }
        }

        let mut link = InviteLink::new(peer_id);
        for pair in pairs() {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "addr" => link.addrs.push(parse_addr("addr", raw, &peer_id)?),
                "relay" => link.relays.push(parse_relay(raw)?),
                "session" => set_once(&mut link.session, "session", raw)?,
                "key" => set_once(&mut link.key, "key", raw)?,
                _ => {} // forward compatibility
            }
        }
        // The canonical form percent-encodes what the input may have left raw, so it can be
        // longer: refuse what could not be written back within the limit (a link must
        // survive being passed on).
        let canonical = link.to_string().len();
        if canonical > MAX_LINK_LEN {
            return Err(LinkError::TooLong(canonical));
        }
        Ok(link)
    }
}

/// The start of an input, for error messages that must not echo megabytes.
fn prefix(s: &str) -> String {
    s.chars().take(64).collect()
}

fn decode(param: &str, raw: &str) -> Result<String, LinkError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| LinkError::Encoding {
            param: param.to_string(),
        })
}

fn set_once(slot: &mut Option<String>, param: &'static str, raw: &str) -> Result<(), LinkError> {
    if slot.is_some() {
        return Err(LinkError::Repeated(param));
    }
    let value = decode(param, raw)?;
    if value.is_empty() {
        return Err(LinkError::EmptyValue(param));
    }
    *slot = Some(value);
    Ok(())
}

fn parse_multiaddr(param: &'static str, raw: &str) -> Result<Multiaddr, LinkError> {
    let value = decode(param, raw)?;
    if value.is_empty() {
        return Err(LinkError::EmptyValue(param));
    }
    Multiaddr::from_str(&value).map_err(|err| LinkError::Multiaddr {
        param,
        value: prefix(&value),
        reason: err.to_string(),
    })
}

/// A direct address; a trailing `/p2p/<id>` must be the link's peer and is dropped.
fn parse_addr(param: &'static str, raw: &str, peer: &PeerId) -> Result<Multiaddr, LinkError> {
    let mut addr = parse_multiaddr(param, raw)?;
    let given = prefix(&addr.to_string());
    if let Some(Protocol::P2p(found)) = addr.iter().last() {
        if found != *peer {
            return Err(LinkError::PeerMismatch {
                param,
                value: given,
                found: found.to_string(),
                expected: peer.to_string(),
            });
        }
        addr.pop();
    }
    stripped_once(param, given.clone(), &addr, |last| {
        matches!(last, Protocol::P2p(_))
    })?;
    nothing_to_dial(param, given, &addr)?;
    Ok(addr)
}

/// The parser drops one trailing `/p2p/<peer>` (or `/p2p-circuit` from a relay); an address
/// that still ends in one after that would lose it again when the link is read back, so the
/// link would not survive being passed on (found by the fuzzer: `…/p2p/<peer>/p2p/<peer>`).
fn stripped_once(
    param: &'static str,
    given: String,
    addr: &Multiaddr,
    is_stripped: impl Fn(&Protocol<'_>) -> bool,
) -> Result<(), LinkError> {
    if addr.iter().last().is_some_and(|last| is_stripped(&last)) {
        return Err(LinkError::Multiaddr {
            param,
            value: given,
            reason: "it ends in two peer ids or two circuits; give each address once".into(),
        });
    }
    Ok(())
}

/// An address that was only the peer's id (`/p2p/<id>`) or a circuit marker leaves nothing
/// to dial: refused, not kept as an empty address (which the link would write as `addr=`
/// and then refuse to read back — found by the fuzzer).
fn nothing_to_dial(param: &'static str, given: String, addr: &Multiaddr) -> Result<(), LinkError> {
    if addr.is_empty() {
        return Err(LinkError::Multiaddr {
            param,
            value: given,
            reason: "it names no address to dial, only a peer id or a circuit".into(),
        });
    }
    Ok(())
}

/// A relay's address, which names the relay's own peer id.
fn parse_relay(raw: &str) -> Result<Multiaddr, LinkError> {
    let mut addr = parse_multiaddr("relay", raw)?;
    let given = prefix(&addr.to_string());
    // Tolerate a full circuit address: keep the relay part.
    if let Some(Protocol::P2pCircuit) = addr.iter().last() {
        addr.pop();
    }
    stripped_once("relay", given.clone(), &addr, |last| {
        matches!(last, Protocol::P2pCircuit)
    })?;
    nothing_to_dial("relay", given, &addr)?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_whose_canonical_form_is_too_long_is_refused_not_half_accepted() {
        // Found by the fuzzer: under the limit as given, over it once re-encoded.
        let key = "%".repeat(100) + &"\u{f3}".repeat(4000);
        let input = format!("whtnxt://connect/{PEER}?key={key}");
        assert!(input.len() <= MAX_LINK_LEN);
        match input.parse::<InviteLink>() {
            Ok(link) => assert!(link.to_string().parse::<InviteLink>().is_ok()),
            Err(err) => assert!(matches!(err, LinkError::TooLong(_)), "{err}"),
        }
    }

    use super::*;
    use proptest::prelude::*;

    const PEER: &str = "12D3KooWAo6AzonxWzEY5rKLGbuYy6fByUwM1HncEPTckHHnRSA8";
    const OTHER: &str = "12D3KooWNTLY5NG7v9s5JkteMsnAJniuNejJWs7CVKuHWNcRRRKY";

    fn parse(s: &str) -> Result<InviteLink, LinkError> {
        s.parse()
    }

    #[test]
    fn valid_links() {
        let link = parse(&format!(
            "whtnxt://connect/{PEER}?addr=/ip4/127.0.0.1/tcp/4001&addr=%2Fip4%2F10.0.0.2%2Fudp%2F4001%2Fquic-v1&relay=/ip4/198.18.0.1/tcp/4001/p2p/{OTHER}&session=pl-1&key=s3cr%2Bt&future=1"
        ))
        .expect("valid");
        assert_eq!(link.peer_id.to_string(), PEER);
        assert_eq!(link.addrs.len(), 2);
        assert_eq!(link.addrs[1].to_string(), "/ip4/10.0.0.2/udp/4001/quic-v1");
        assert_eq!(link.relays.len(), 1);
        assert_eq!(link.session.as_deref(), Some("pl-1"));
        assert_eq!(link.key.as_deref(), Some("s3cr+t"));
        assert!(!link.needs_discovery());
        let dial: Vec<String> = link.dial_addrs().iter().map(|a| a.to_string()).collect();
        assert_eq!(dial[0], format!("/ip4/127.0.0.1/tcp/4001/p2p/{PEER}"));
        assert_eq!(
            dial[2],
            format!("/ip4/198.18.0.1/tcp/4001/p2p/{OTHER}/p2p-circuit/p2p/{PEER}")
        );

        // Case rules: scheme and action are case-insensitive.
        let upper = parse(&format!("WHTNXT://Connect/{PEER}/")).expect("valid");
        assert_eq!(upper.peer_id.to_string(), PEER);

        // An addr may carry the link's own peer id; it is normalised away.
        let with_p2p = parse(&format!(
            "whtnxt://connect/{PEER}?addr=/ip4/1.2.3.4/tcp/1/p2p/{PEER}"
        ))
        .expect("valid");
        assert_eq!(with_p2p.addrs[0].to_string(), "/ip4/1.2.3.4/tcp/1");
    }

    #[test]
    fn upstream_style_link_parses_but_needs_discovery() {
        let link = parse(&format!("whtnxt://connect/{PEER}")).expect("valid");
        assert!(link.needs_discovery());
        assert!(link.dial_addrs().is_empty());
    }

    #[test]
    fn invalid_links_name_the_bad_part() {
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "empty"),
            ("https://example.com".into(), "whtnxt://"),
            ("whtnxt:connect".into(), "whtnxt://"),
            (format!("whtnxt://join/{PEER}"), "\"join\""),
            ("whtnxt://connect/".into(), "no peer id"),
            ("whtnxt://connect/QmNotAPeer".into(), "not a valid peer id"),
            (
                format!("whtnxt://connect/{PEER}?addr=/ip4/999.1.1.1/tcp/1"),
                "addr=",
            ),
            (format!("whtnxt://connect/{PEER}?addr="), "addr is empty"),
            // Found by the fuzzer: an address of the peer id alone left an empty address,
            // which the link wrote as `addr=` and then could not read back.
            (
                format!("whtnxt://connect/{PEER}?addr=/p2p/{PEER}"),
                "names no address to dial",
            ),
            (
                format!("whtnxt://connect/{PEER}?relay=/p2p-circuit"),
                "names no address to dial",
            ),
            (
                format!("whtnxt://connect/{PEER}?addr=/ip4/1.2.3.4/tcp/1/p2p/{OTHER}"),
                "names peer",
            ),
            // Found by the fuzzer: the peer id twice at the end lost one each time the link
            // was read, so a link passed on was not the link received.
            (
                format!("whtnxt://connect/{PEER}?addr=/ip4/1.2.3.4/tcp/1/p2p/{PEER}/p2p/{PEER}"),
                "two peer ids or two circuits",
            ),
            (
                format!(
                    "whtnxt://connect/{PEER}?relay=/ip4/1.2.3.4/tcp/1/p2p/{OTHER}/p2p-circuit/p2p-circuit"
                ),
                "two peer ids or two circuits",
            ),
            (format!("whtnxt://connect/{PEER}?relay=nonsense"), "relay="),
            (
                format!("whtnxt://connect/{PEER}?session=a&session=b"),
                "session appears more than once",
            ),
            (
                format!("whtnxt://connect/{PEER}?key=%FF"),
                "key is not valid",
            ),
            (
                format!("whtnxt://connect/{PEER}?{}", "x".repeat(MAX_LINK_LEN)),
                "refused",
            ),
        ];
        for (input, expected) in cases {
            let err = parse(&input).expect_err(&input);
            assert!(
                err.to_string().contains(expected),
                "{input:?}: {err} (wanted {expected:?})"
            );
        }
    }

    #[test]
    fn addresses_are_capped_and_the_error_names_the_count_and_the_cap() {
        let addrs = |n: usize| -> String {
            (0..n)
                .map(|i| format!("addr=/ip4/10.0.{}.{}/tcp/1", i / 250, i % 250))
                .collect::<Vec<_>>()
                .join("&")
        };
        let relays = |n: usize| -> String {
            (0..n)
                .map(|i| format!("relay=/ip4/198.18.0.{i}/tcp/4001/p2p/{OTHER}"))
                .collect::<Vec<_>>()
                .join("&")
        };
        // At the caps: accepted, and the canonical form parses back.
        let full = parse(&format!(
            "whtnxt://connect/{PEER}?{}&{}",
            addrs(MAX_LINK_ADDRS),
            relays(MAX_LINK_RELAYS)
        ))
        .expect("a link at the caps parses");
        assert_eq!(full.addrs.len(), MAX_LINK_ADDRS);
        assert_eq!(full.relays.len(), MAX_LINK_RELAYS);
        assert_eq!(parse(&full.to_string()), Ok(full));

        let err = parse(&format!(
            "whtnxt://connect/{PEER}?{}",
            addrs(MAX_LINK_ADDRS + 1)
        ))
        .expect_err("one addr too many");
        assert_eq!(
            err,
            LinkError::TooManyAddrs {
                param: "addr",
                count: MAX_LINK_ADDRS + 1,
                max: MAX_LINK_ADDRS
            }
        );
        let err = parse(&format!(
            "whtnxt://connect/{PEER}?{}",
            relays(MAX_LINK_RELAYS + 1)
        ))
        .expect_err("one relay too many");
        assert!(err.to_string().contains("5 relay= parameters"), "{err}");
        assert!(err.to_string().contains("at most 4"), "{err}");

        // Issue 14: a valid 8 KiB link with 261 short addresses gave a 40 KB error.
        let mut query = String::new();
        let mut n = 0;
        while query.len() < MAX_LINK_LEN - 200 {
            query.push_str(&format!("addr=/ip4/1.2.{}.{}/tcp/1&", n / 250, n % 250));
            n += 1;
        }
        let input = format!("whtnxt://connect/{PEER}?{query}");
        assert!(
            input.len() <= MAX_LINK_LEN && n > 200,
            "{} {n}",
            input.len()
        );
        let err = parse(&input).expect_err("too many addresses");
        let text = err.to_string();
        assert!(text.len() < 300, "{text}");
        assert!(text.contains(&format!("{n} addr= parameters")), "{text}");
        assert!(text.contains("at most 16"), "{text}");
    }

    fn peer() -> impl Strategy<Value = PeerId> {
        any::<[u8; 32]>().prop_map(|seed| {
            let key = libp2p_identity::Keypair::ed25519_from_bytes(seed).expect("32 bytes");
            key.public().to_peer_id()
        })
    }

    fn addr() -> impl Strategy<Value = Multiaddr> {
        (any::<[u8; 4]>(), any::<u16>(), any::<bool>()).prop_map(|(ip, port, quic)| {
            let base = Multiaddr::empty().with(Protocol::Ip4(ip.into()));
            if quic {
                base.with(Protocol::Udp(port)).with(Protocol::QuicV1)
            } else {
                base.with(Protocol::Tcp(port))
            }
        })
    }

    fn link() -> impl Strategy<Value = InviteLink> {
        (
            peer(),
            proptest::collection::vec(addr(), 0..=MAX_LINK_ADDRS),
            proptest::collection::vec((addr(), peer()), 0..=MAX_LINK_RELAYS),
            proptest::option::of("\\PC{1,20}"),
            proptest::option::of("\\PC{1,40}"),
        )
            .prop_map(|(peer_id, addrs, relays, session, key)| InviteLink {
                peer_id,
                addrs,
                relays: relays
                    .into_iter()
                    .map(|(a, p)| a.with(Protocol::P2p(p)))
                    .collect(),
                session,
                key,
            })
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(link in link()) {
            let text = link.to_string();
            let back: InviteLink = text.parse().expect("formatted links parse");
            prop_assert_eq!(back, link);
        }

        #[test]
        fn random_input_never_panics(input in "\\PC{0,200}") {
            let _ = input.parse::<InviteLink>();
            let _ = format!("whtnxt://connect/{input}").parse::<InviteLink>();
            let _ = format!("whtnxt://connect/{PEER}?{input}").parse::<InviteLink>();
        }

        #[test]
        fn mutated_links_never_panic(link in link(), cut in any::<usize>(), byte in any::<u8>(), at in any::<usize>()) {
            let mut bytes = link.to_string().into_bytes();
            let at = at % (bytes.len() + 1);
            bytes.insert(at, byte);
            bytes.truncate(cut % (bytes.len() + 1));
            let text = String::from_utf8_lossy(&bytes);
            let _ = text.parse::<InviteLink>();
        }
    }
}
