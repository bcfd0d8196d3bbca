package dev.isthmus.api.registry;

import java.util.Map;
import java.util.Objects;

/**
 * One instance of a service, as the federation knows it (DESIGN.md, "Names").
 *
 * @param service {@code namespace/name}
 * @param instance unique id of the workload instance within its cluster
 * @param cluster the owning cluster
 * @param address where its sidecar's inbound listener is reached inside its cluster
 * @param port that listener's port
 * @param protocol {@code http}, {@code http2}, {@code grpc} or {@code tcp}
 * @param labels workload labels; {@code version} is the subset key
 * @param region locality: region
 * @param zone locality: zone
 * @param healthy whether the instance passes its health checks
 * @param weight load-balancing weight, 1-128
 * @param identity the workload's SPIFFE ID
 */
public record Endpoint(String service, String instance, String cluster, String address, int port, String protocol,
        Map<String, String> labels, String region, String zone, boolean healthy, int weight, String identity) {

    public Endpoint {
        Objects.requireNonNull(service, "service");
        Objects.requireNonNull(instance, "instance");
        Objects.requireNonNull(cluster, "cluster");
        labels = labels == null ? Map.of() : Map.copyOf(labels);
    }

    /** A stable text form used for the snapshot content hash. */
    public String canonical() {
        return String.join("|", service, instance, cluster, address, Integer.toString(port), protocol,
                new java.util.TreeMap<>(labels).toString(), region, zone, Boolean.toString(healthy),
                Integer.toString(weight), identity);
    }
}
