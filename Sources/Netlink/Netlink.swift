import CMnl
import CPierShim

public enum NetlinkPlaceholder { public static var bufferSize: Int { Int(pier_mnl_socket_buffer_size()) } }
