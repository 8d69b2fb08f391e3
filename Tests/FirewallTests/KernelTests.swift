import Firewall
import Foundation
import IPAddressing
import PierTestSupport
import Testing

@Suite(.enabled(if: isRoot, Comment(rawValue: needsRootReason)))
struct KernelTests {
    @Test func createsTheLayoutAndReadsItBack() throws {
        try withTestHosts(1) { hosts in
            let host = hosts[0]
            let nft = try client(in: host)
            let added = try nft.apply(PierLayout.setup, ensuring: [PierLayout.dnatRule, PierLayout.masqueradeRule])
            #expect(added.count == 2)
            var elements = Batch()
            elements.addElements(
                [PierLayout.mapping(.tcp, 8080, to: "10.88.0.2", 80, owner: "c1/eth0")], to: PierLayout.dnatMap.path)
            elements.addElements(
                [SetElement(prefix: try #require(IPPrefix("10.88.0.0/16")), comment: "net:pier0")],
                to: PierLayout.masqueradeSubnets.path)
            try nft.commit(elements)

            let text = try host.mustRun(["nft", "list", "ruleset"]).stdout
            print(text)
        }
    }
}
