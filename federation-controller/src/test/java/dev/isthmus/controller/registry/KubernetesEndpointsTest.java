package dev.isthmus.controller.registry;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.api.names.MeshNames;
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
    void eachSlicePortTakesTheServicePortOfItsName() throws Exception {
        // A meshed Service: its ports target the sidecar's inbound listeners, and the mesh names them by the Service's ports.
        var seen = new AtomicReference<List<Endpoint>>();
        client.services().inNamespace("shop").resource(new ServiceBuilder().withNewMetadata().withName("catalog2").withNamespace("shop").endMetadata()
                .withNewSpec().addNewPort().withName("http").withPort(80).withNewTargetPort(15006).endPort()
                .addNewPort().withName("grpc").withPort(9090).withNewTargetPort(15016).endPort().endSpec().build()).create();
        client.discovery().v1().endpointSlices().inNamespace("shop").resource(new EndpointSliceBuilder().withNewMetadata().withName("catalog2-a")
                .withNamespace("shop").addToLabels(KubernetesEndpoints.SERVICE_NAME_LABEL, "catalog2").endMetadata().withAddressType("IPv4")
                .addNewPort().withName("http").withPort(15006).endPort().addNewPort().withName("grpc").withPort(15016).endPort()
                .addToEndpoints(new EndpointBuilder().withAddresses("10.1.0.9").withTargetRef(new ObjectReferenceBuilder().withName("c2-1").build()).build())
                .build()).create();
        try (var source = new KubernetesEndpoints(client, List.of("shop"), "eu-west", "eu-west", "zone-a", "eu-west.acme.isthmus", seen::set)) {
            source.start();
            var eps = await(seen, l -> l.stream().filter(e -> e.service().equals("shop/catalog2")).count() == 2).stream()
                    .filter(e -> e.service().equals("shop/catalog2")).toList();
            var grpc = eps.stream().filter(e -> e.port() == 15016).findFirst().orElseThrow();
            var http = eps.stream().filter(e -> e.port() == 15006).findFirst().orElseThrow();
            assertEquals("grpc", grpc.protocol());
            assertEquals(9090, MeshNames.servicePort(grpc.labels()), "the grpc port is service port 9090: " + grpc.labels());
            assertEquals(80, MeshNames.servicePort(http.labels()));
            assertFalse(http.labels().containsKey(MeshNames.SERVICE_PORT_LABEL), "80 is the default and is not written: " + http.labels());
            assertEquals("c2-1:15016", grpc.instance());
        } finally {
            client.services().inNamespace("shop").withName("catalog2").delete();
            client.discovery().v1().endpointSlices().inNamespace("shop").withName("catalog2-a").delete();
        }
    }

    @Test
    void aPodsVersionLabelAndServiceAccountMakeItsSubsetAndIdentity() throws Exception {
        // A canary: v1 and v2 pods behind one Service; the slice (as Kubernetes writes it) carries no version.
        var seen = new AtomicReference<List<Endpoint>>();
        client.services().inNamespace("shop").resource(new ServiceBuilder().withNewMetadata().withName("catalog3").withNamespace("shop").endMetadata()
                .withNewSpec().addNewPort().withName("http").withPort(80).withNewTargetPort(15006).endPort().endSpec().build()).create();
        for (String v : List.of("v1", "v2")) {
            client.pods().inNamespace("shop").resource(new io.fabric8.kubernetes.api.model.PodBuilder().withNewMetadata().withName("catalog3-" + v)
                    .withNamespace("shop").addToLabels("app", "catalog3").addToLabels("version", v).endMetadata()
                    .withNewSpec().withServiceAccountName("catalog3-sa").addNewContainer().withName("app").withImage("x").endContainer().endSpec()
                    .build()).create();
        }
        var slice = new EndpointSliceBuilder().withNewMetadata().withName("catalog3-a").withNamespace("shop")
                .addToLabels(KubernetesEndpoints.SERVICE_NAME_LABEL, "catalog3").endMetadata().withAddressType("IPv4")
                .addNewPort().withName("http").withPort(15006).endPort();
        int i = 20;
        for (String pod : List.of("catalog3-v1", "catalog3-v2", "not-a-pod-we-know")) {
            slice.addToEndpoints(new EndpointBuilder().withAddresses("10.1.0." + i++)
                    .withTargetRef(new ObjectReferenceBuilder().withKind("Pod").withName(pod).build()).build());
        }
        client.discovery().v1().endpointSlices().inNamespace("shop").resource(slice.build()).create();
        try (var source = new KubernetesEndpoints(client, List.of("shop"), "eu-west", "eu-west", "zone-a", "eu-west.acme.isthmus", seen::set)) {
            source.start();
            var eps = await(seen, l -> l.stream().filter(e -> e.service().equals("shop/catalog3") && e.labels().containsKey("version")).count() == 2)
                    .stream().filter(e -> e.service().equals("shop/catalog3")).toList();
            assertEquals(3, eps.size(), eps.toString());
            assertEquals("v1", eps.get(0).labels().get("version"));
            assertEquals("v2", eps.get(1).labels().get("version"));
            assertEquals("spiffe://eu-west.acme.isthmus/ns/shop/sa/catalog3-sa", eps.get(1).identity(), "the pod's service account");
            assertFalse(eps.get(2).labels().containsKey("version"), "a pod not (yet) seen: no subset");
            assertEquals("spiffe://eu-west.acme.isthmus/ns/shop/sa/default", eps.get(2).identity());
        } finally {
            client.services().inNamespace("shop").withName("catalog3").delete();
            client.discovery().v1().endpointSlices().inNamespace("shop").withName("catalog3-a").delete();
            client.pods().inNamespace("shop").delete();
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
