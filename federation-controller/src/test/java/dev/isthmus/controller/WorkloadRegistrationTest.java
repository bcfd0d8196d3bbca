package dev.isthmus.controller;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import io.quarkus.test.junit.QuarkusTest;
import org.junit.jupiter.api.Test;

/** Registration by sidecars and the catalog it feeds, on the controller's own REST API. */
@QuarkusTest
class WorkloadRegistrationTest {

    static final String WORKLOAD = "test-workload-credential-0123456789";

    private static String registration(String instance) {
        return """
                {"service":"shop/product-catalog","instance":"%s","address":"127.0.0.1","port":15006,
                 "protocol":"http","labels":{"version":"v2"},"identity":"spiffe://test-east.acme.isthmus/ns/shop/sa/product-catalog"}
                """.formatted(instance);
    }

    @Test
    void aRegisteredInstanceAppearsInTheCatalogWithItsLocalityAndLeavesOnDeregistration() {
        given().auth().oauth2(WORKLOAD).contentType("application/json").body(registration("pc-1")).post("/api/v1/workloads").then().statusCode(201);
        given().auth().oauth2(WORKLOAD).contentType("application/json").body(registration("pc-1")).post("/api/v1/workloads").then().statusCode(200);
        given().get("/api/v1/services/shop/product-catalog").then().statusCode(200)
                .body("clusters.test-east[0].endpoint.instance", equalTo("pc-1"))
                .body("clusters.test-east[0].endpoint.region", equalTo("test-east"))
                .body("clusters.test-east[0].endpoint.labels.version", equalTo("v2"))
                .body("clusters.test-east[0].clusterState", equalTo("Local"));
        given().auth().oauth2(WORKLOAD).delete("/api/v1/workloads/pc-1").then().statusCode(204);
        given().get("/api/v1/services/shop/product-catalog").then().statusCode(404)
                .contentType("application/problem+json");
    }

    @Test
    void registrationNeedsTheWorkloadCredential() {
        given().contentType("application/json").body(registration("pc-9")).post("/api/v1/workloads").then().statusCode(401)
                .contentType("application/problem+json").body("detail", containsString("workload credential"));
        given().auth().oauth2("some-other-credential-value").delete("/api/v1/workloads/pc-9").then().statusCode(403);
        given().get("/api/v1/services/shop/product-catalog").then().statusCode(404);
    }

    @Test
    void rejectsMalformedJsonWithWhereItBroke() {
        given().auth().oauth2(WORKLOAD).contentType("application/json").body("{\"service\": ").post("/api/v1/workloads").then().statusCode(400)
                .contentType("application/problem+json")
                .body("status", equalTo(400))
                .body("detail", containsString("line 1"));
    }

    @Test
    void rejectsABadServiceNameNamingTheField() {
        given().auth().oauth2(WORKLOAD).contentType("application/json").body(registration("pc-2").replace("shop/product-catalog", "Shop"))
                .post("/api/v1/workloads").then().statusCode(400)
                .body("detail", containsString("field 'service'"));
    }

    @Test
    void rejectsUnknownFieldsAndBadPorts() {
        given().auth().oauth2(WORKLOAD).contentType("application/json").body(registration("pc-3").replace("\"port\":15006", "\"port\":70000"))
                .post("/api/v1/workloads").then().statusCode(400).body("detail", containsString("field 'port'"));
        given().auth().oauth2(WORKLOAD).contentType("application/json").body(registration("pc-4").replace("\"protocol\"", "\"protocl\""))
                .post("/api/v1/workloads").then().statusCode(400).body("detail", containsString("protocl"));
        given().auth().oauth2(WORKLOAD).contentType("application/json")
                .body(registration("pc-5").replace("{\"version\":\"v2\"}", "{\"version\":\"v2\",\"isthmus.dev/service-port\":\"90a\"}"))
                .post("/api/v1/workloads").then().statusCode(400)
                .body("detail", containsString("label 'isthmus.dev/service-port' must be a port number 1-65535, got '90a'"));
    }

    @Test
    void deregisteringAnUnknownInstanceIsA404Problem() {
        given().auth().oauth2(WORKLOAD).delete("/api/v1/workloads/nobody").then().statusCode(404)
                .contentType("application/problem+json").body("detail", containsString("nobody"));
    }
}
