import Foundation
import GRPCNIOTransportCore
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension ServiceEndpoints {
    /// The instances the registry lists as serving, updated as it changes.
    public static func registry(name: String, watcher: RegistryWatcher) -> ServiceEndpoints {
        ServiceEndpoints(name: name, describedAs: "etcd \(watcher.prefix)/services/\(name)", changes: { watcher.changes() }) {
            guard watcher.hasRead else { throw EndpointsNotYetKnown(reason: "the registry has not been read yet (\(watcher.status.detail))") }
            var addresses: [GRPCNIOTransportCore.SocketAddress] = []
            for instance in watcher.serving(name) {
                guard let hostPort = HostPort(parsing: instance.address),
                      let address = try? await GRPCNIOTransportCore.SocketAddress.resolving(hostPort) else { continue }
                if !addresses.contains(address) { addresses.append(address) }
            }
            return addresses
        }
    }

    /// Every A and AAAA record of each name (a Kubernetes headless Service: one per pod), looked
    /// up again every `refresh`.
    public static func dns(name: String, _ names: [HostPort], refresh: Duration) -> ServiceEndpoints {
        ServiceEndpoints(
            name: name, describedAs: "dns " + names.map(\.description).joined(separator: ","),
            changes: {
                AsyncStream { continuation in
                    let task = Task {
                        while !Task.isCancelled {
                            continuation.yield()
                            try? await Task.sleep(for: refresh)
                        }
                        continuation.finish()
                    }
                    continuation.onTermination = { _ in task.cancel() }
                }
            }
        ) {
            var addresses: [GRPCNIOTransportCore.SocketAddress] = []
            var lastError: (any Error)?
            for name in names {
                do {
                    for address in try await GRPCNIOTransportCore.SocketAddress.resolvingAll(name) where !addresses.contains(address) {
                        addresses.append(address)
                    }
                } catch {
                    lastError = error
                }
            }
            if addresses.isEmpty, let lastError { throw lastError }
            // A stable order, so that an unchanged answer in another order is no change.
            return addresses.sorted { "\($0)" < "\($1)" }
        }
    }
}

extension GRPCNIOTransportCore.SocketAddress {
    /// Every address `name` resolves to (getaddrinfo, TCP), IP literals as they are.
    public static func resolvingAll(_ name: HostPort) async throws -> [GRPCNIOTransportCore.SocketAddress] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            #else
            hints.ai_socktype = SOCK_STREAM
            #endif
            var results: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(name.host, String(name.port), &hints, &results)
            guard status == 0, let first = results else {
                throw DiscoveryError("\(name.host) does not resolve: \(String(cString: gai_strerror(status)))")
            }
            defer { freeaddrinfo(first) }
            var addresses: [GRPCNIOTransportCore.SocketAddress] = []
            var next: UnsafeMutablePointer<addrinfo>? = first
            while let info = next {
                if let raw = info.pointee.ai_addr {
                    let resolved: NIOCore.SocketAddress? = switch info.pointee.ai_family {
                    case AF_INET: raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { NIOCore.SocketAddress($0.pointee, host: name.host) }
                    case AF_INET6: raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { NIOCore.SocketAddress($0.pointee, host: name.host) }
                    default: nil
                    }
                    switch resolved {
                    case .v4?: if let ip = resolved?.ipAddress { addresses.append(.ipv4(host: ip, port: name.port)) }
                    case .v6?: if let ip = resolved?.ipAddress { addresses.append(.ipv6(host: ip, port: name.port)) }
                    default: break
                    }
                }
                next = info.pointee.ai_next
            }
            var unique: [GRPCNIOTransportCore.SocketAddress] = []
            for address in addresses where !unique.contains(address) { unique.append(address) }
            return unique
        }
    }
}

public struct DiscoveryError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
