package dev.isthmus.controller.federation;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.isthmus.api.names.PeerState;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.api.registry.RegistrySnapshot;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class FederatedCatalogTest {

    private static Endpoint endpoint(String cluster, String instance) {
        return new Endpoint("shop/product-catalog", instance, cluster, "127.0.0.1", 15006, "http", Map.of("version", "v1"),
                cluster, "zone-a", true, 1, "spiffe://" + cluster + ".acme.isthmus/ns/shop/sa/product-catalog");
    }

    @Test
    void keepsTheNewestGenerationAndDropsReplaysOfOlderOnes() {
        var catalog = new FederatedCatalog();
        var v1 = RegistrySnapshot.of("eu-west", 10, List.of(endpoint("eu-west", "a")));
        var v2 = RegistrySnapshot.of("eu-west", 11, List.of(endpoint("eu-west", "a"), endpoint("eu-west", "b")));
        assertEquals(FederatedCatalog.Outcome.APPLIED, catalog.accept(v1));
        assertEquals(FederatedCatalog.Outcome.APPLIED, catalog.accept(v2));
        assertEquals(FederatedCatalog.Outcome.STALE, catalog.accept(v1));
        assertEquals(FederatedCatalog.Outcome.STALE, catalog.accept(v2));
        assertEquals(11, catalog.generation("eu-west"));
        var services = catalog.services(Map.of("eu-west", PeerState.ACTIVE), "us-east");
        assertEquals(2, services.get(0).clusters().get("eu-west").size());
    }

    @Test
    void dropsASnapshotWhoseHashDoesNotMatchItsEndpoints() {
        var catalog = new FederatedCatalog();
        var honest = RegistrySnapshot.of("eu-west", 10, List.of(endpoint("eu-west", "a")));
        var tampered = new RegistrySnapshot("eu-west", 12, honest.hash(), List.of(endpoint("eu-west", "evil")));
        assertEquals(FederatedCatalog.Outcome.INCONSISTENT, catalog.accept(tampered));
        assertEquals(-1, catalog.generation("eu-west"));
    }

    @Test
    void anUnreachablePeersEndpointsAreKeptAndLabelled() {
        var catalog = new FederatedCatalog();
        catalog.accept(RegistrySnapshot.of("eu-west", 10, List.of(endpoint("eu-west", "a"))));
        var services = catalog.services(Map.of("eu-west", PeerState.UNREACHABLE), "us-east");
        assertEquals("Unreachable", services.get(0).clusters().get("eu-west").get(0).clusterState());
        assertEquals(List.of(), catalog.services(Map.of("eu-west", PeerState.LEFT), "us-east"));
    }
}
