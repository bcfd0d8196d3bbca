package dev.isthmus.cli.local;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import org.junit.jupiter.api.Test;

class TopologyTest {

    private final Topology three = new Topology("acme", List.of("us-east", "eu-west", "ap-south"), 20000,
            Path.of("/repo"), Path.of("/repo/.isthmus"), "java");

    @Test
    void noTwoComponentsShareAPort() {
        var seen = new HashSet<Integer>();
        for (Component c : three.components()) {
            for (int port : c.ports()) {
                assertTrue(seen.add(port), "port " + port + " of " + c.id() + " is used twice");
            }
        }
        assertEquals(3 * 12, three.components().size()); // nats, controller, bridge, gateway, and 4 apps with their sidecars
    }

    @Test
    void thePrometheusConfigurationScrapesEveryComponentWithMetricsLabelledByRegion() throws Exception {
        var without = three.without(List.of("us-east/product-catalog-v2"));
        var yaml = new com.fasterxml.jackson.databind.ObjectMapper(new com.fasterxml.jackson.dataformat.yaml.YAMLFactory())
                .readTree(without.prometheusConfigText());
        var byJob = new java.util.TreeMap<String, List<String>>();
        for (var job : yaml.path("scrape_configs")) {
            var targets = new java.util.ArrayList<String>();
            for (var sc : job.path("static_configs")) {
                String target = sc.path("targets").get(0).asText();
                targets.add(sc.path("labels").path("region").asText() + " " + sc.path("labels").path("deployment").asText("-") + " "
                        + job.path("metrics_path").asText() + " " + target);
            }
            byJob.put(job.path("job_name").asText(), targets);
        }
        assertEquals(List.of("east-west-gateway", "federation-controller", "sidecar", "trust-bridge"), List.copyOf(byJob.keySet()));
        assertEquals(List.of("us-east - /q/metrics 127.0.0.1:20010", "eu-west - /q/metrics 127.0.0.1:20110", "ap-south - /q/metrics 127.0.0.1:20210"),
                byJob.get("federation-controller"));
        assertEquals("us-east - /metrics 127.0.0.1:" + three.gatewayAdminPort("us-east"), byJob.get("east-west-gateway").get(0));
        assertEquals(11, byJob.get("sidecar").size(), "every sidecar but the absent one: " + byJob.get("sidecar"));
        assertTrue(byJob.get("sidecar").contains("eu-west product-catalog-v2 /metrics 127.0.0.1:" + three.sidecarAdminPort("eu-west", "product-catalog-v2")),
                byJob.get("sidecar").toString());
        assertTrue(byJob.get("sidecar").stream().noneMatch(t -> t.startsWith("us-east product-catalog-v2")), byJob.get("sidecar").toString());
        assertEquals("5s", yaml.path("global").path("scrape_interval").asText());
    }

    @Test
    void natsConfigLinksEveryOtherRegionByGateway() {
        String conf = three.natsConfigText("eu-west");
        assertTrue(conf.contains("name: \"us-east\", urls: [\"nats://127.0.0.1:20001\"]"), conf);
        assertTrue(conf.contains("name: \"ap-south\", urls: [\"nats://127.0.0.1:20201\"]"), conf);
        assertTrue(conf.contains("jetstream"), conf);
        assertTrue(conf.contains("port: 20100"), conf);
    }

    @Test
    void startsNatsBeforeControllersBeforeAppsBeforeProxies() {
        var stages = three.components().stream().map(Component::stage).toList();
        for (int i = 1; i < stages.size(); i++) {
            assertTrue(stages.get(i - 1) <= stages.get(i));
        }
        assertEquals(Component.Kind.NATS, three.components().get(0).kind());
    }

    @Test
    void rejectsBadRegionsAndPortRanges() {
        assertThrows(IllegalArgumentException.class, () -> new Topology("acme", List.of("US"), 20000, Path.of("/"), Path.of("/s"), "java"));
        assertThrows(IllegalArgumentException.class, () -> new Topology("acme", List.of("a", "a"), 20000, Path.of("/"), Path.of("/s"), "java"));
        assertThrows(IllegalArgumentException.class, () -> new Topology("acme", List.of("a"), 65500, Path.of("/"), Path.of("/s"), "java"));
    }

    @Test
    void aSingleRegionRunsAStandaloneNatsServer() {
        var one = new Topology("acme", List.of("us-east"), 21000, Path.of("/home"), Path.of("/state"), "java");
        String conf = one.natsConfigText("us-east");
        org.junit.jupiter.api.Assertions.assertTrue(conf.contains("jetstream"), conf);
        org.junit.jupiter.api.Assertions.assertFalse(conf.contains("gateway") || conf.contains("cluster"), conf);
    }
}
