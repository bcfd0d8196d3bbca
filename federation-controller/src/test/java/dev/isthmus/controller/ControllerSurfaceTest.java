package dev.isthmus.controller;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import io.quarkus.test.junit.QuarkusTest;
import org.junit.jupiter.api.Test;

/** The controller's own HTTP surface, with no NATS server reachable. */
@QuarkusTest
@io.quarkus.test.common.QuarkusTestResource(FreshTestState.class)
class ControllerSurfaceTest {

    @Test
    void isLiveButNotReadyWithoutNats() {
        given().get("/q/health/live").then().statusCode(200);
        given().get("/q/health/ready").then().statusCode(503).body(containsString("\"nats\""));
    }

    @Test
    void servesPrometheusMetricsWithFederationMeters() {
        given().get("/q/metrics").then().statusCode(200).body(containsString("isthmus_federation_peers"));
    }

    @Test
    void describesItsFederation() {
        given().get("/api/v1/federation").then().statusCode(200)
                .body("cluster", equalTo("test-east"))
                .body("publicKey", org.hamcrest.Matchers.startsWith("sha256:"))
                .body("natsConnected", equalTo(false));
    }

    @Test
    void publishesItsOpenApiDocument() {
        given().get("/q/openapi").then().statusCode(200).body(containsString("/api/v1/federation"));
    }

    @Test
    void listsItselfAmongTheClustersAndAnswersUnknownClustersWithAProblem() {
        given().get("/api/v1/clusters").then().statusCode(200).body("[0].name", equalTo("test-east")).body("[0].state", equalTo("Local"));
        given().get("/api/v1/clusters/nowhere").then().statusCode(404).contentType("application/problem+json")
                .body("detail", containsString("'nowhere'"));
    }
}
