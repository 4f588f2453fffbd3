import Foundation
import GRPCNIOTransportCore
import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// How clients find service instances (`DISCOVERY`), and how instances make themselves found.
public struct DiscoverySettings: Sendable {
    public enum Mode: String, Sendable {
        /// `*_SERVICE_ADDRS`, asked for again on reconnection.
        case `static`
        /// Every A/AAAA record of each name in `*_SERVICE_ADDRS`, looked up every `DNS_REFRESH_SECONDS`.
        case dns
        /// Instances register in etcd under `ETCD_PREFIX`; clients watch it.
        case etcd
    }

    public var mode: Mode = .static
    public var dnsRefresh: Duration = .seconds(5)
    public var etcdEndpoints: [String] = ["http://127.0.0.1:2379"]
    public var etcdPrefix = "/aisaas"
    public var etcdUser: String?
    public var etcdPassword: String?
    /// From `ETCD_CA_FILE`, `ETCD_CERT_FILE`, `ETCD_KEY_FILE`; nil trusts the system's roots.
    public var etcdTLS: TLSConfiguration?
    public var leaseTTL = 10
    /// `ADVERTISE_ADDR`: the `host:port` other hosts reach this instance at; by default the
    /// listening address, or this host's first non-loopback IP when listening on every address.
    public var advertiseAddress: HostPort?
    /// `INSTANCE_ID`: this instance's name in the registry (default: host name, process id and a
    /// random suffix).
    public var instanceID: String

    public init(mode: Mode = .static, instanceID: String = DiscoverySettings.defaultInstanceID()) {
        self.mode = mode
        self.instanceID = instanceID
    }

    public static func read(_ settings: SettingsReader) -> DiscoverySettings {
        var discovery = DiscoverySettings()
        let modeText = settings.string("discovery", default: "static").lowercased()
        if let mode = Mode(rawValue: modeText) {
            discovery.mode = mode
        } else {
            settings.report("DISCOVERY must be static, dns or etcd; got \(modeText.quotedForMessage)")
        }
        discovery.dnsRefresh = .seconds(settings.int("dns.refresh.seconds", default: 5, range: 1...3600))
        let endpoints = settings.list("etcd.endpoints")
        if !endpoints.isEmpty {
            for endpoint in endpoints where !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
                settings.report("ETCD_ENDPOINTS items must be http:// or https:// URLs; got \(endpoint.quotedForMessage)")
            }
            discovery.etcdEndpoints = endpoints
        }
        var prefix = settings.string("etcd.prefix", default: "/aisaas")
        while prefix.hasSuffix("/") { prefix.removeLast() }
        if !prefix.hasPrefix("/") { settings.report("ETCD_PREFIX must start with /; got \(prefix.quotedForMessage)") }
        discovery.etcdPrefix = prefix
        discovery.etcdUser = settings.string("etcd.username")
        discovery.etcdPassword = settings.string("etcd.password", isSecret: true)
        discovery.etcdTLS = EtcdTLS.read(settings)
        discovery.leaseTTL = settings.int("etcd.lease.ttl.seconds", default: 10, range: 2...300)
        if let text = settings.string("advertise.addr") {
            if let address = HostPort(parsing: text) { discovery.advertiseAddress = address } else {
                settings.report("ADVERTISE_ADDR must be host:port; got \(text.quotedForMessage)")
            }
        }
        if let id = settings.string("instance.id") {
            if id.contains("/") || id.count > 128 { settings.report("INSTANCE_ID must have no / and at most 128 characters") }
            discovery.instanceID = id
        }
        return discovery
    }

    public static func defaultInstanceID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return "\(host)-\(ProcessInfo.processInfo.processIdentifier)-\(suffix)"
    }

    /// The etcd client, when discovery is etcd.
    public func makeStore() -> (any RegistryStore)? {
        guard mode == .etcd else { return nil }
        return EtcdClient(endpoints: etcdEndpoints, user: etcdUser, password: etcdPassword, tls: etcdTLS)
    }

    /// Where a client finds `service`: the fixed list, its names' DNS records, or the registry.
    public func endpoints(for service: String, addresses: [HostPort], watcher: RegistryWatcher?) -> ServiceEndpoints {
        switch mode {
        case .static: .fixed(name: service, addresses)
        case .dns: .dns(name: service, addresses, refresh: dnsRefresh)
        case .etcd: watcher.map { .registry(name: service, watcher: $0) } ?? .fixed(name: service, addresses)
        }
    }

    /// The registration of an instance of `service` listening at what `listening` answers; nil
    /// unless discovery is etcd.
    public func registration(
        service: String, store: (any RegistryStore)?, logger: Logger,
        listening: @escaping @Sendable () async throws -> GRPCNIOTransportCore.SocketAddress
    ) -> ServiceRegistration? {
        guard let store else { return nil }
        let configured = advertiseAddress
        return ServiceRegistration(
            store: store, prefix: etcdPrefix, service: service, id: instanceID, ttl: leaseTTL, logger: logger
        ) {
            if let configured { return configured.description }
            let bound = try await listening()
            let (host, port): (String, Int) = if let v4 = bound.ipv4 { (v4.host, v4.port) } else if let v6 = bound.ipv6 { (v6.host, v6.port) } else {
                throw DiscoveryError("the server listens on \(bound), which other hosts cannot reach")
            }
            guard host == "0.0.0.0" || host == "::" else { return HostPort(host: host, port: port).description }
            guard let ip = Self.firstNonLoopbackAddress() else {
                throw DiscoveryError("listening on every address and no ADVERTISE_ADDR: no network address of this host to register")
            }
            return HostPort(host: ip, port: port).description
        }
    }

    static func firstNonLoopbackAddress() -> String? {
        let devices = (try? System.enumerateDevices()) ?? []
        let addresses = devices.compactMap { device -> NIOCore.SocketAddress? in device.address }
        let v4 = addresses.first { if case .v4 = $0 { return $0.ipAddress.map { !$0.hasPrefix("127.") } ?? false }; return false }
        return (v4 ?? addresses.first { if case .v6 = $0 { return $0.ipAddress.map { $0 != "::1" && !$0.hasPrefix("fe80") } ?? false }; return false })?.ipAddress
    }
}
