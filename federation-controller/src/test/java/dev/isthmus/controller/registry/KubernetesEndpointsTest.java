package dev.isthmus.controller.registry;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.api.registry.Endpoint;
import io.fabric8.kubernetes.api.model.ObjectReferenceBuilder;
import io.fabric8.kubernetes.api.model.ServiceBuilder;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointBuilder;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSlice;
import io.fabric8.kubernetes.api.model.discovery.v1.EndpointSliceBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;

/** The Kubernetes source against fabric8's mock API server in CRUD mode (it keeps what is created, and watches work). */
@EnableKubernetesMockClient(crud = true)
class KubernetesEndpointsTest {

    static KubernetesClient client;

    static EndpointSlice slice(String name, String service, boolean ready, String... pods) {
        var b = new EndpointSliceBuilder().withNewMetadata().withName(name).withNamespace("shop")
                .addToLabels(KubernetesEndpoints.SERVICE_NAME_LABEL, service).addToLabels("version", "v2").endMetadata()
                .withAddressType("IPv4").addNewPort().withName("http-web").withPort(8080).endPort();
        int i = 1;
        for (String pod : pods) {
            b.addToEndpoints(new EndpointBuilder().withAddresses("10.1.0." + i++).withNewConditions().withReady(ready).endConditions()
                    .withZone("zone-b").withTargetRef(new ObjectReferenceBuilder().withKind("Pod").withName(pod).build()).build());
        }
        return b.build();
    }

    static List<Endpoint> await(AtomicReference<List<Endpoint>> seen, Predicate<List<Endpoint>> condition) throws InterruptedException {
        Instant deadline = Instant.now().plus(Duration.ofSeconds(10));
        while (Instant.now().isBefore(deadline)) {
            var now = seen.get();
            if (now != null && condition.test(now)) {
                return now;
            }
            Thread.sleep(50);
        }
        throw new AssertionError("the source never delivered the expected endpoints; last: " + seen.get());
    }

    @Test
    void servicesAndTheirSlicesBecomeEndpointsAndFollowChanges() throws Exception {
        var seen = new AtomicReference<List<Endpoint>>();
        client.services().inNamespace("shop").resource(new ServiceBuilder().withNewMetadata().withName("product-catalog").withNamespace("shop")
                .addToAnnotations(KubernetesEndpoints.SERVICE_ACCOUNT_ANNOTATION, "catalog").endMetadata().withNewSpec().addNewPort()
                .withPort(8080).endPort().endSpec().build()).create();
        client.discovery().v1().endpointSlices().inNamespace("shop").resource(slice("pc-abc", "product-catalog", true, "pc-1", "pc-2")).create();
        // A slice whose Service does not exist is ignored.
        client.discovery().v1().endpointSlices().inNamespace("shop").resource(slice("orphan-x", "orphan", true, "o-1")).create();

        try (var source = new KubernetesEndpoints(client, List.of(), "eu-west", "eu-west", "zone-a", "eu-west.acme.isthmus", seen::set)) {
            source.start();
            var eps = await(seen, l -> l.size() == 2);
            Endpoint first = eps.get(0);
            assertEquals("shop/product-catalog", first.service());
            assertEquals("pc-1", first.instance());
            assertEquals("10.1.0.1", first.address());
            assertEquals(8080, first.port());
            assertEquals("http", first.protocol());
            assertEquals("v2", first.labels().get("version"));
            assertEquals("zone-b", first.zone());
            assertEquals("eu-west", first.cluster());
            assertTrue(first.healthy());
            assertEquals("spiffe://eu-west.acme.isthmus/ns/shop/sa/catalog", first.identity());

            client.discovery().v1().endpointSlices().inNamespace("shop").resource(slice("pc-abc", "product-catalog", false, "pc-1")).update();
            eps = await(seen, l -> l.size() == 1 && !l.get(0).healthy());
            assertFalse(eps.get(0).healthy(), "a not-ready endpoint is kept, unhealthy");

            client.services().inNamespace("shop").withName("product-catalog").delete();
            await(seen, List::isEmpty);
        }
    }

    @Test
    void protocolsFollowAppProtocolThenThePortNamePrefix() {
        var p = new io.fabric8.kubernetes.api.model.discovery.v1.EndpointPortBuilder();
        assertEquals("grpc", KubernetesEndpoints.protocol(p.withName("x").withAppProtocol("grpc").build()));
        assertEquals("http2", KubernetesEndpoints.protocol(p.withName("x").withAppProtocol("kubernetes.io/h2c").build()));
        assertEquals("http", KubernetesEndpoints.protocol(p.withName("http-api").withAppProtocol(null).build()));
        assertEquals("grpc", KubernetesEndpoints.protocol(p.withName("grpc").withAppProtocol(null).build()));
        assertEquals("tcp", KubernetesEndpoints.protocol(p.withName("db").withAppProtocol(null).build()));
    }
}
