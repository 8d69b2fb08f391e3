import CNftnl

public enum FirewallPlaceholder { public static func make() -> OpaquePointer? { nftnl_table_alloc() } }
