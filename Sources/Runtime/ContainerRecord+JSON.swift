import CNI

extension ContainerRecord {
    /// `ps` and `inspect` form: the record plus the live status.
    public var json: JSONValue {
        var object = JSONObject()
        object["id"] = .string(id)
        object["name"] = .string(name)
        object["status"] = .string(displayStatus)
        object["created"] = .string(created)
        object["command"] = .array(command.map { .string($0) })
        object["network"] = .string(networkDescription)
        object["netns"] = netnsPath.map { .string($0) } ?? .null
        object["pid"] = pid.map { .integer($0) } ?? .null
        object["exitCode"] = exitCode.map { .integer($0) } ?? .null
        object["attachments"] = .array(
            attachments.map { attachment in
                .object(
                    JSONObject([
                        ("network", .string(attachment.network)), ("ifName", .string(attachment.ifName)),
                        ("addresses", .array(attachment.addresses.map { .string($0) })),
                    ]))
            })
        // The container's side, the way `docker inspect` users look for it: interface name → addresses.
        object["interfaces"] = .array(
            attachments.map { attachment in
                .object(
                    JSONObject([
                        ("name", .string(attachment.ifName)), ("network", .string(attachment.network)),
                        ("addresses", .array(attachment.addresses.map { .string($0) })),
                    ]))
            })
        if let rootfs { object["rootfs"] = .string(rootfs) }
        return .object(object)
    }

    /// `pier`, `pier,other`, `host`, `none` or `container:NAME`.
    public var networkDescription: String {
        switch networkMode {
        case .networks(let names): return names.joined(separator: ",")
        case .none: return "none"
        case .host: return "host"
        case .container(let other): return "container:\(other)"
        }
    }
}
