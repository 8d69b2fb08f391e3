import Testing

@testable import Plugins

/// The allowlist's own regular-expression matcher, against what Go's regexp answers for the
/// same pattern and key (unanchored MatchString).
@Suite struct SysctlPatternTests {
    @Test(arguments: [
        // The reference plugin's documented allowlist lines.
        (#"^net\.ipv4\.conf\.IFNAME\.[a-z_]*$"#, "net.ipv4.conf.IFNAME.arp_filter", true),
        (#"^net\.ipv4\.conf\.IFNAME\.[a-z_]*$"#, "net.ipv4.conf.IFNAME.arp_filter2", false),
        (#"^net\.ipv4\.conf\.IFNAME\.[a-z_]*$"#, "net.ipv4.conf.all.arp_filter", false),
        (#"^net\.core\.somaxconn$"#, "net.core.somaxconn", true),
        (#"^net\.core\.somaxconn$"#, "net.core.somaxconnx", false),
        (#"^net\.core\.somaxconn$"#, "xnet.core.somaxconn", false),
        // Unanchored: anywhere in the key; an unescaped dot is any character.
        (#"net\.ipv4\.conf\.IFNAME\."#, "net.ipv4.conf.IFNAME.rp_filter", true),
        ("somaxconn", "net.core.somaxconn", true),
        ("net.core", "netxcore.a", true),
        (#"net\.core"#, "netxcore.a", false),
        ("", "anything", true),
        // Alternation, groups, repetition, classes.
        (#"^net\.(ipv4|ipv6)\.conf\.[^.]+\.forwarding$"#, "net.ipv6.conf.eth0.forwarding", true),
        (#"^net\.(ipv4|ipv6)\.conf\.[^.]+\.forwarding$"#, "net.ipv6.conf..forwarding", false),
        (#"^net\.(?:ipv4|ipv6)\.conf\.[^.]+\.forwarding$"#, "net.ipv5.conf.eth0.forwarding", false),
        (#"^a{2,3}$"#, "aaa", true),
        (#"^a{2,3}$"#, "aaaa", false),
        (#"^a{2}$"#, "aa", true),
        (#"^a{2,}b?$"#, "aaaaab", true),
        (#"^(a*)+$"#, "aaa", true),
        (#"^(a*){2}b$"#, "b", true),
        (#"^\w+\d\s?$"#, "ab_9", true),
        (#"^[]a]+$"#, "a]a", true),
        (#"^[a\-z]+$"#, "a-z", true),
        (#"^[a\-z]+$"#, "b", false),
        (#"\Anet\z"#, "net", true),
        ("^x|y$", "ay", true),
        ("^x|y$", "ya", false),
    ])
    func matchesAsGoRegexpDoes(pattern: String, key: String, expected: Bool) throws {
        #expect(try SysctlPattern(pattern).matches(key) == expected)
    }

    @Test(arguments: ["(net", "net)", "*net", "a{3,1}", #"\bnet"#, "(?i)net", "[[:alpha:]]", "[abc", #"net\"#, "a{x}"])
    func refusesWhatItDoesNotUnderstand(pattern: String) {
        #expect(throws: SysctlPattern.Invalid.self) { try SysctlPattern(pattern) }
    }
}
