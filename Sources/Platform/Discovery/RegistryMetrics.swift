import CoreMetrics
import Synchronization

extension RegistryWatcher {
    /// `aisaas_registry_reachable` (1 while the last read or watch of etcd worked) and
    /// `aisaas_registry_instances{service, state}`, read at each scrape.
    public func report(to telemetry: Telemetry) {
        let factory = telemetry.metrics
        let reachable = Gauge(label: "aisaas_registry_reachable", factory: factory)
        let gauges = Mutex<[String: Gauge]>([:])
        telemetry.beforeScrape.add { [weak self] in
            guard let self else { return }
            reachable.record(status.reachable ? 1 : 0)
            var counts: [String: (service: String, state: String, count: Int)] = [:]
            for instance in all {
                let key = "\(instance.service)/\(instance.state.rawValue)"
                counts[key, default: (instance.service, instance.state.rawValue, 0)].count += 1
            }
            gauges.withLock { gauges in
                for (key, gauge) in gauges where counts[key] == nil {
                    gauge.record(0)
                }
                for (key, entry) in counts {
                    let gauge = gauges[key] ?? Gauge(
                        label: "aisaas_registry_instances", dimensions: [("service", entry.service), ("state", entry.state)], factory: factory
                    )
                    gauges[key] = gauge
                    gauge.record(entry.count)
                }
            }
        }
    }
}
