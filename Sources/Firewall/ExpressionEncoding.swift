import CNftnl

/// Builds libnftnl expressions from `Expression` values; attribute choices follow what
/// `nft --debug=netlink` shows nft itself sending for the same clause.
enum ExpressionEncoder {
    static func build(_ expression: Expression, anonymousSetID: UInt32?) -> OpaquePointer? {
        switch expression {
        case .meta(let key, let register):
            return make("meta") { e in
                u32(e, NFTNL_EXPR_META_KEY, key.rawValue)
                u32(e, NFTNL_EXPR_META_DREG, register.rawValue)
            }
        case .metaSet(let key, let register):
            return make("meta") { e in
                u32(e, NFTNL_EXPR_META_KEY, key.rawValue)
                u32(e, NFTNL_EXPR_META_SREG, register.rawValue)
            }
        case .payload(let base, let offset, let length, let register):
            return make("payload") { e in
                u32(e, NFTNL_EXPR_PAYLOAD_DREG, register.rawValue)
                u32(e, NFTNL_EXPR_PAYLOAD_BASE, base.rawValue)
                u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset)
                u32(e, NFTNL_EXPR_PAYLOAD_LEN, length)
            }
        case .cmp(let op, let register, let value):
            return make("cmp") { e in
                u32(e, NFTNL_EXPR_CMP_SREG, register.rawValue)
                u32(e, NFTNL_EXPR_CMP_OP, op.rawValue)
                data(e, NFTNL_EXPR_CMP_DATA, value)
            }
        case .lookup(let set, let source, let destination, let inverted):
            return make("lookup") { e in
                u32(e, NFTNL_EXPR_LOOKUP_SREG, source.rawValue)
                if let destination { u32(e, NFTNL_EXPR_LOOKUP_DREG, destination.rawValue) }
                switch set {
                case .named(let name): string(e, NFTNL_EXPR_LOOKUP_SET, name)
                case .anonymous: string(e, NFTNL_EXPR_LOOKUP_SET, anonymousSetName)
                }
                if let anonymousSetID { u32(e, NFTNL_EXPR_LOOKUP_SET_ID, anonymousSetID) }
                if inverted { u32(e, NFTNL_EXPR_LOOKUP_FLAGS, 1) }  // NFT_LOOKUP_F_INV
            }
        case .immediate(let verdict):
            return make("immediate") { e in
                u32(e, NFTNL_EXPR_IMM_DREG, Register.verdict.rawValue)
                u32(e, NFTNL_EXPR_IMM_VERDICT, UInt32(bitPattern: verdict.code))
                if let chain = verdict.chain { string(e, NFTNL_EXPR_IMM_CHAIN, chain) }
            }
        case .immediateData(let value, let register):
            return make("immediate") { e in
                u32(e, NFTNL_EXPR_IMM_DREG, register.rawValue)
                data(e, NFTNL_EXPR_IMM_DATA, value)
            }
        case .nat(let type, let family, let address, let port, let flags):
            return make("nat") { e in
                u32(e, NFTNL_EXPR_NAT_TYPE, type.rawValue)
                u32(e, NFTNL_EXPR_NAT_FAMILY, family.rawValue)
                if let address { u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, address.rawValue) }
                if let port { u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, port.rawValue) }
                if flags != 0 { u32(e, NFTNL_EXPR_NAT_FLAGS, flags) }
            }
        case .masquerade(let flags):
            return make("masq") { e in
                if flags != 0 { u32(e, NFTNL_EXPR_MASQ_FLAGS, flags) }
            }
        case .fib(let flags, let result, let register):
            return make("fib") { e in
                u32(e, NFTNL_EXPR_FIB_DREG, register.rawValue)
                u32(e, NFTNL_EXPR_FIB_RESULT, result.rawValue)
                u32(e, NFTNL_EXPR_FIB_FLAGS, flags.rawValue)
            }
        case .ct(let key, let register):
            return make("ct") { e in
                u32(e, NFTNL_EXPR_CT_KEY, key.rawValue)
                u32(e, NFTNL_EXPR_CT_DREG, register.rawValue)
            }
        case .bitwise(let source, let destination, let mask, let xor):
            return make("bitwise") { e in
                u32(e, NFTNL_EXPR_BITWISE_SREG, source.rawValue)
                u32(e, NFTNL_EXPR_BITWISE_DREG, destination.rawValue)
                u32(e, NFTNL_EXPR_BITWISE_LEN, UInt32(mask.count))
                data(e, NFTNL_EXPR_BITWISE_MASK, mask)
                data(e, NFTNL_EXPR_BITWISE_XOR, xor)
            }
        case .range(let op, let register, let from, let to):
            return make("range") { e in
                u32(e, NFTNL_EXPR_RANGE_SREG, register.rawValue)
                u32(e, NFTNL_EXPR_RANGE_OP, op.rawValue)
                data(e, NFTNL_EXPR_RANGE_FROM_DATA, from)
                data(e, NFTNL_EXPR_RANGE_TO_DATA, to)
            }
        case .counter:
            return make("counter") { _ in }
        case .numgen(let type, let modulus, let register):
            return make("numgen") { e in
                u32(e, NFTNL_EXPR_NG_DREG, register.rawValue)
                u32(e, NFTNL_EXPR_NG_MODULUS, modulus)
                u32(e, NFTNL_EXPR_NG_TYPE, type.rawValue)
                u32(e, NFTNL_EXPR_NG_OFFSET, 0)
            }
        case .jhash(let source, let length, let modulus, let seed, let register):
            return make("hash") { e in
                u32(e, NFTNL_EXPR_HASH_SREG, source.rawValue)
                u32(e, NFTNL_EXPR_HASH_DREG, register.rawValue)
                u32(e, NFTNL_EXPR_HASH_LEN, length)
                u32(e, NFTNL_EXPR_HASH_MODULUS, modulus)
                u32(e, NFTNL_EXPR_HASH_SEED, seed)
                u32(e, NFTNL_EXPR_HASH_OFFSET, 0)
                u32(e, NFTNL_EXPR_HASH_TYPE, 0)  // NFT_HASH_JENKINS
            }
        }
    }

    private static func make(_ name: String, _ configure: (OpaquePointer) -> Void) -> OpaquePointer? {
        guard let expression = nftnl_expr_alloc(name) else { return nil }
        configure(expression)
        return expression
    }

    private static func u32(_ expression: OpaquePointer, _ attribute: Int, _ value: UInt32) {
        nftnl_expr_set_u32(expression, UInt16(attribute), value)
    }

    private static func string(_ expression: OpaquePointer, _ attribute: Int, _ value: String) {
        nftnl_expr_set_str(expression, UInt16(attribute), value)
    }

    private static func data(_ expression: OpaquePointer, _ attribute: Int, _ value: [UInt8]) {
        value.withUnsafeBytes { raw in
            _ = nftnl_expr_set(expression, UInt16(attribute), raw.baseAddress, UInt32(raw.count))
        }
    }
}
