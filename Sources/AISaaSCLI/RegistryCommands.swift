import ArgumentParser
import Foundation
import Platform

/// `aisaas registry …`: the service registry in etcd (`DISCOVERY=etcd`).
public struct RegistryCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "registry",
        abstract: "The service registry in etcd (ETCD_ENDPOINTS, ETCD_PREFIX).",
        subcommands: [RegistryList.self]
    )

    public init() {}
}

struct RegistryList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Lists the registered service instances: service, id, address, state and, with --health, what the instance's gRPC health says."
    )

    @OptionGroup var source: SourceOptions

    @Flag(help: "Ask each instance's gRPC health service as well.")
    var health = false

    @Flag(help: "One JSON object per instance instead of a table.")
    var json = false

    func run() async throws {
        try await runReportingConfigurationErrors { try await list() }
    }

    private func list() async throws {
        let (config, _) = try await source.loadReader()
        let settings = SettingsReader(config)
        var discovery = DiscoverySettings.read(settings)
        try settings.finish()
        discovery.mode = .etcd
        guard let store = discovery.makeStore() else { return }
        let (entries, _) = try await reachingEtcd(discovery) { try await store.range(prefix: discovery.etcdPrefix + "/services/") }
        let instances = entries.compactMap { RegisteredInstance(key: $0.key, value: $0.value, prefix: discovery.etcdPrefix) }
            .sorted { ($0.service, $0.id) < ($1.service, $1.id) }
        var rows: [[String]] = []
        for instance in instances {
            var row = [instance.service, instance.id, instance.address, instance.state.rawValue]
            if health {
                row.append(await HealthProbe.status(of: instance.address, service: ""))
            }
            rows.append(row)
        }
        if json {
            for (instance, row) in zip(instances, rows) {
                var object: [String: String] = ["service": instance.service, "id": instance.id, "address": instance.address, "state": instance.state.rawValue]
                if health { object["health"] = row[4] }
                let data = try JSONSerialization.data(withJSONObject: object, options: .sortedKeys)
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        let header = ["SERVICE", "ID", "ADDRESS", "STATE"] + (health ? ["HEALTH"] : [])
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        for row in [header] + rows {
            print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        if instances.isEmpty { print("(no instances registered under \(discovery.etcdPrefix)/services/)") }
    }
}
