import PierState
import Testing

@Suite struct TextSearchTests {
    @Test func findsEveryOccurrenceWithoutOverlap() {
        #expect("a.tmp-1.tmp-2".utf8Offsets(of: ".tmp-") == [1, 7])
        #expect("aaaa".utf8Offsets(of: "aa") == [0, 2])
        #expect("abc".utf8Offsets(of: "abcd") == [])
        #expect("abc".utf8Offsets(of: "") == [])
        #expect("héllo wörld".containsText("wö"))
        #expect(!"invalid auth".containsText("auth token"))
    }

    @Test func splitsKeepingEmptyPieces() {
        #expect("a%2Fb%2F%2Fc".components(separatedByText: "%2F") == ["a", "b", "", "c"])
        #expect("%2F".components(separatedByText: "%2F") == ["", ""])
        #expect("plain".components(separatedByText: "%2F") == ["plain"])
        #expect("".components(separatedByText: "%2F") == [""])
    }

    @Test func recognisesSiblingTemporaries() {
        #expect(FileSystem.temporaryWriter(of: "result.json.tmp-4242") == 4242)
        #expect(FileSystem.temporaryWriter(of: "result.json") == nil)
        #expect(FileSystem.temporaryWriter(of: "a.tmp-1.tmp-2") == nil)
        #expect(FileSystem.isSiblingTemporary("x.tmp-9"))
        #expect(!FileSystem.isSiblingTemporary("x.tmp"))
    }
}
