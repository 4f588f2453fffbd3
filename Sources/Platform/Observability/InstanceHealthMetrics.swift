import CoreMetrics
import Synchronization

extension InstanceHealthMonitor {
    /// `aisaas_service_instance_serving{service, address}`: 1 while the monitor sees the instance
    /// serving, 0 otherwise, read at each scrape. An instance that left the set loses its series
    /// rather than staying at 0 (an alert on 0 means an instance that is there and failing).
    public func reportServing(to telemetry: Telemetry) {
        let factory = telemetry.metrics
        let gauges = Mutex<[String: Gauge]>([:])
        telemetry.beforeScrape.add { [self] in
            let current = snapshot
            gauges.withLock { gauges in
                var seen = Set<String>()
                for instance in current {
                    seen.insert(instance.address)
                    let gauge = gauges[instance.address] ?? Gauge(
                        label: "aisaas_service_instance_serving",
                        dimensions: [("service", instance.service), ("address", instance.address)],
                        factory: factory
                    )
                    gauges[instance.address] = gauge
                    gauge.record(instance.serving ? 1 : 0)
                }
                for (address, gauge) in gauges where !seen.contains(address) {
                    gauge.destroy()
                    gauges[address] = nil
                }
            }
        }
    }
}
