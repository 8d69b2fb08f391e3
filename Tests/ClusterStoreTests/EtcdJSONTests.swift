import JSON
import Testing

@testable import ClusterStore

/// The etcd gateway's JSON forms and the base64 its keys and values travel in, without an etcd.
@Suite struct EtcdJSONTests {
    @Test(arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"), ("/pier/ipam/n/leases/10.0.0.2", "L3BpZXIvaXBhbS9uL2xlYXNlcy8xMC4wLjAuMg=="),
    ])
    func base64MatchesRFC4648(plain: String, encoded: String) {
        #expect(Base64.encode(plain) == encoded)
        #expect(Base64.decode(encoded) == plain)
    }

    @Test func base64CoversEveryByteAndTheWholeAlphabet() {
        let bytes = (0...255).map { UInt8($0) }
        let encoded = Base64.encode(bytes)
        #expect(encoded.hasPrefix("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4"))
        #expect(encoded.hasSuffix("+/w=="))
        #expect(Base64.decodeBytes(encoded) == bytes)
        #expect(Base64.encode([0xfb, 0xff]) == "+/8=")
        #expect(Base64.decodeBytes("+/8=") == [0xfb, 0xff])
        // etcd's rangeEnd keys end in bytes that are not UTF-8.
        #expect(Base64.decodeBytes(Base64.encode(EtcdClusterStore.rangeEnd(Array("/a/".utf8)))) == Array("/a0".utf8))
    }

    @Test(arguments: ["Zg", "Zg=", "Z===", "Zm9v!A==", "Zm=v", "====", "Zg==Zg==", "Zm9 v"])
    func base64RefusesMalformedText(text: String) {
        #expect(Base64.decodeBytes(text) == nil)
        #expect(Base64.decode(text) == nil)
    }

    @Test func absentValueDecodesToEmpty() {
        #expect(Base64.decode(nil) == "")
    }

    @Test func requestsLeaveDefaultsOut() {
        #expect(EtcdRangeRequest(key: "a").json.encodedString == #"{"key":"a"}"#)
        #expect(
            EtcdRangeRequest(key: "a", range_end: "b", count_only: true).json.encodedString
                == #"{"key":"a","range_end":"b","count_only":true}"#)
        let txn = EtcdTxnRequest(
            compare: [EtcdCompare(key: "k", target: "CREATE", create_revision: "0")],
            success: [EtcdRequestOp(request_put: EtcdPutRequest(key: "k", value: "dg=="))],
            failure: [EtcdRequestOp(request_range: EtcdRangeRequest(key: "k"))])
        #expect(
            txn.json.encodedString
                == #"{"compare":[{"key":"k","result":"EQUAL","target":"CREATE","create_revision":"0"}],"#
                + #""success":[{"request_put":{"key":"k","value":"dg=="}}],"failure":[{"request_range":{"key":"k"}}]}"#)
        let watch = EtcdWatchRequest(create_request: EtcdWatchCreate(key: "a", range_end: "b", start_revision: "7"))
        #expect(watch.json.encodedString == #"{"create_request":{"key":"a","range_end":"b","start_revision":"7"}}"#)
    }

    @Test func answersAreReadWithTheirDefaults() throws {
        let txn = try #require(
            EtcdTxnResponse(
                json: try JSONValue(
                    parsing:
                        #"{"header":{"revision":"42","raft_term":"3"},"responses":[{"response_range":{"header":{},"kvs":[{"key":"YQ==","value":"Yg==","mod_revision":"41"}],"count":"1"}}]}"#
                )))
        #expect(txn.succeeded == nil)
        #expect(txn.header?.revisionNumber == 42)
        let kv = try #require(txn.responses?.first?.response_range?.kvs?.first)
        #expect(kv.key == "YQ==" && kv.value == "Yg==" && kv.mod_revision == "41")
        // An empty value is left out by the gateway.
        #expect(EtcdKeyValue(json: try JSONValue(parsing: #"{"key":"YQ=="}"#))?.value == nil)
        let watch = try #require(
            EtcdWatchMessage(
                json: try JSONValue(
                    parsing: #"{"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"YQ=="}}]}}"#)))
        #expect(watch.result?.events?.count == 1)
        #expect(watch.result?.header?.revisionNumber == 9)
        let failure = try #require(
            EtcdWatchMessage(
                json: try JSONValue(parsing: #"{"error":{"grpc_code":14,"http_code":503,"message":"no leader"}}"#)))
        #expect(failure.error?.text == "no leader")
        #expect(EtcdErrorBody(json: try JSONValue(parsing: #"{"error":"boom","code":2}"#))?.text == "boom")
    }

    @Test func answersThatAreNotObjectsAreRefused() throws {
        #expect(EtcdRangeResponse(json: try JSONValue(parsing: "[]")) == nil)
        #expect(EtcdTxnResponse(json: .string("x")) == nil)
        #expect(EtcdWatchMessage(json: .null) == nil)
    }
}
