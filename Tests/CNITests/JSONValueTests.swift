import Foundation
import Testing

@testable import CNI

@Suite struct JSONValueTests {
    @Test func keepsKeyOrderAndNumberText() throws {
        let input = #"{"z":1,"a":[true,false,null],"m":{"big":18446744073709551615,"f":1.50,"e":-2E+3},"s":"x"}"#
        let value = try JSONValue(parsing: input)
        #expect(value.encodedString == input)
        #expect(value.objectValue?.keys == ["z", "a", "m", "s"])
        #expect(value["m"]?["big"] == .number("18446744073709551615"))
        #expect(value["z"]?.intValue == 1)
        #expect(value["m"]?["f"]?.intValue == nil)
        #expect(value["m"]?["f"]?.doubleValue == 1.5)
    }

    @Test func decodesEscapesAndReencodesThem() throws {
        let value = try JSONValue(parsing: #"["a\"b\\c\/d\n\t\u0001\u00e9\ud83d\ude00"]"#)
        #expect(value.arrayValue?.first?.stringValue == "a\"b\\c/d\n\t\u{1}é😀")
        #expect(value.encodedString == #"["a\"b\\c/d\n\t\u0001é😀"]"#)
    }

    @Test func whitespaceIsAllowedAroundTokens() throws {
        let value = try JSONValue(parsing: " \n{ \"a\" : [ 1 , 2 ] }\t ")
        #expect(value.encodedString == #"{"a":[1,2]}"#)
    }

    @Test(arguments: [
        "", "{", "{\"a\" 1}", "[1,]", "01", "1.", "-", "tru", "\"abc", "{\"a\":1} x", "{a:1}", "\"\u{01}\"", "[1 2]",
    ])
    func rejectsInvalidText(_ input: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: input) }
    }

    @Test func rejectsHostileNesting() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: deep) }
    }

    @Test func duplicateKeyIsRefusedWithItsPath() throws {
        #expect(throws: JSONSyntaxError.self) { try JSONValue(parsing: #"{"a":1,"b":2,"a":3}"#) }
        do {
            _ = try JSONValue(parsing: #"{"a":[{"x":1},{"b":{"c":1,"c":2}}]}"#)
            Issue.record("a repeated key parsed")
        } catch {
            #expect(error.duplicateKey == "a[1].b.c")
        }
        // The same key in sibling objects is no repeat.
        #expect(try JSONValue(parsing: #"[{"a":1},{"a":2}]"#).arrayValue?.count == 2)
    }

    @Test func objectSubscriptReplacesInPlaceAndRemoves() {
        var object: JSONObject = ["a": .integer(1), "b": .integer(2), "c": .integer(3)]
        object["b"] = .string("x")
        object["a"] = nil
        object["d"] = .null
        #expect(JSONValue.object(object).encodedString == #"{"b":"x","c":3,"d":null}"#)
    }

    @Test func codableBridgeRoundTrips() throws {
        struct Holder: Codable, Equatable { var extra: JSONValue }
        // Only the pier CLI's reports use the bridge, through Foundation's coders.
        let decoded = try JSONDecoder().decode(Holder.self, from: Data(#"{"extra":{"b":[1,"x",null],"a":true}}"#.utf8))
        #expect(decoded.extra == .object(["a": .bool(true), "b": .array([.integer(1), .string("x"), .null])]))
    }
}
