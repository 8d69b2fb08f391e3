import CNI

/// `state.json` and `process.json`, read and written with Pier's JSON module. The shape is the one
/// Swift's synthesized `Codable` gave them before (an absent optional is left out, a network mode is
/// `{"networks":{"_0":[…]}}`), so stores written by earlier versions load. Foundation's coders cost a
/// measurable share of every `pier run` (their first use in a process above all).
extension ContainerRecord {
    var stateJSON: JSONValue {
        var object = JSONObject()
        object["attachments"] = .array(attachments.map(\.stateJSON))
        object["autoRemove"] = .bool(autoRemove)
        object["command"] = .array(command.map { .string($0) })
        object["created"] = .string(created)
        object["detached"] = .bool(detached)
        object["exitCode"] = exitCode.map { .integer($0) }
        object["id"] = .string(id)
        object["name"] = .string(name)
        object["netnsPath"] = netnsPath.map { .string($0) }
        object["networkMode"] = networkMode.stateJSON
        object["ownerPID"] = ownerPID.map { .integer($0) }
        object["ownsNetns"] = .bool(ownsNetns)
        object["pid"] = pid.map { .integer($0) }
        object["pidStartTime"] = pidStartTime.map { .integer($0) }
        object["monitorRobustList"] = monitorRobustList.map { .integer($0) }
        object["rootfs"] = rootfs.map { .string($0) }
        object["status"] = .string(status.rawValue)
        return .object(object)
    }

    /// nil when a required field is missing or of the wrong kind.
    init?(stateJSON value: JSONValue) {
        guard let object = value.objectValue, let id = object["id"]?.stringValue,
            let name = object["name"]?.stringValue, let status = object["status"]?.stringValue.flatMap(Status.init),
            let created = object["created"]?.stringValue, let command = object["command"]?.stringArray,
            let mode = object["networkMode"].flatMap(NetworkMode.init(stateJSON:)),
            let ownsNetns = object["ownsNetns"]?.boolValue, let attachmentValues = object["attachments"]?.arrayValue,
            let autoRemove = object["autoRemove"]?.boolValue, let detached = object["detached"]?.boolValue
        else { return nil }
        var attachments: [NetworkAttachmentRecord] = []
        for attachmentValue in attachmentValues {
            guard let attachment = NetworkAttachmentRecord(stateJSON: attachmentValue) else { return nil }
            attachments.append(attachment)
        }
        self.init(id: id, name: name, command: command, networkMode: mode)
        self.status = status
        self.created = created
        self.netnsPath = object["netnsPath"]?.stringValue
        self.ownsNetns = ownsNetns
        self.attachments = attachments
        self.rootfs = object["rootfs"]?.stringValue
        self.autoRemove = autoRemove
        self.detached = detached
        self.pid = object["pid"]?.intValue.flatMap(Int32.init(exactly:))
        self.pidStartTime = object["pidStartTime"]?.intValue.flatMap(UInt64.init(exactly:))
        self.monitorRobustList = object["monitorRobustList"]?.intValue.flatMap(UInt64.init(exactly:))
        self.exitCode = object["exitCode"]?.intValue.flatMap(Int32.init(exactly:))
        self.ownerPID = object["ownerPID"]?.intValue.flatMap(Int32.init(exactly:))
    }
}

extension ContainerRecord.NetworkMode {
    /// One key naming the case, holding the associated value under `_0` (an empty object when none).
    var stateJSON: JSONValue {
        switch self {
        case .networks(let names): return .object(["networks": .object(["_0": .array(names.map { .string($0) })])])
        case .none: return .object(["none": .object(JSONObject())])
        case .host: return .object(["host": .object(JSONObject())])
        case .container(let name): return .object(["container": .object(["_0": .string(name)])])
        }
    }

    init?(stateJSON value: JSONValue) {
        guard let object = value.objectValue, object.count == 1, let (key, payload) = object.entries.first else {
            return nil
        }
        switch key {
        case "networks":
            guard let names = payload.objectValue?["_0"]?.stringArray else { return nil }
            self = .networks(names)
        case "none": self = .none
        case "host": self = .host
        case "container":
            guard let name = payload.objectValue?["_0"]?.stringValue else { return nil }
            self = .container(name)
        default: return nil
        }
    }
}

extension NetworkAttachmentRecord {
    var stateJSON: JSONValue {
        .object([
            "addresses": .array(addresses.map { .string($0) }), "capabilityArgs": .string(capabilityArgs),
            "cniArgs": .array(cniArgs.map { .array($0.map { .string($0) }) }), "ifName": .string(ifName),
            "network": .string(network),
        ])
    }

    init?(stateJSON value: JSONValue) {
        guard let object = value.objectValue, let network = object["network"]?.stringValue,
            let ifName = object["ifName"]?.stringValue, let capabilityArgs = object["capabilityArgs"]?.stringValue,
            let addresses = object["addresses"]?.stringArray, let cniArgValues = object["cniArgs"]?.arrayValue
        else { return nil }
        var cniArgs: [[String]] = []
        for pair in cniArgValues {
            guard let strings = pair.stringArray else { return nil }
            cniArgs.append(strings)
        }
        self.init(
            network: network, ifName: ifName, capabilityArgs: capabilityArgs, cniArgs: cniArgs, addresses: addresses)
    }
}

extension ProcessOptions {
    var stateJSON: JSONValue {
        var object = JSONObject()
        object["environment"] = .array(environment.map { .string($0) })
        object["workdir"] = workdir.map { .string($0) }
        object["interactive"] = .bool(interactive)
        object["tty"] = .bool(tty)
        object["dnsServers"] = dnsServers.map { .array($0.map { .string($0) }) }
        object["dnsSearch"] = dnsSearch.map { .array($0.map { .string($0) }) }
        object["dnsOptions"] = dnsOptions.map { .array($0.map { .string($0) }) }
        return .object(object)
    }

    init?(stateJSON value: JSONValue) {
        guard let object = value.objectValue, let environment = object["environment"]?.stringArray,
            let interactive = object["interactive"]?.boolValue, let tty = object["tty"]?.boolValue
        else { return nil }
        self.init(
            environment: environment, workdir: object["workdir"]?.stringValue, interactive: interactive, tty: tty)
        dnsServers = object["dnsServers"]?.stringArray
        dnsSearch = object["dnsSearch"]?.stringArray
        dnsOptions = object["dnsOptions"]?.stringArray
    }
}

extension JSONValue {
    /// An array of strings only; nil for anything else.
    fileprivate var stringArray: [String]? {
        guard let values = arrayValue else { return nil }
        var strings: [String] = []
        strings.reserveCapacity(values.count)
        for value in values {
            guard let string = value.stringValue else { return nil }
            strings.append(string)
        }
        return strings
    }
}
