package dev.isthmus.controller.membership;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.startsWith;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.controller.membership.ClusterIdentity;
import dev.isthmus.controller.membership.JoinToken;
import io.quarkus.test.junit.QuarkusTest;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The membership API of one controller with no NATS reachable: credentials, token making and every
 * refusal a joiner can get before its request leaves the cluster. Joins between live controllers
 * are in the e2e module. Runs in order: first unfederated, then founding, then leaving.
 */
@QuarkusTest
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class MembershipApiTest {

    static final String ADMIN = "test-admin-credential-0123456789";

    @TempDir
    static Path keys;

    private static String token(String federation, String cluster, Instant expires) throws Exception {
        var issuer = ClusterIdentity.loadOrCreate(keys.resolve("issuer"));
        return new JoinToken("id-" + System.nanoTime(), federation, "us-west", issuer.fingerprint(), List.of("nats://127.0.0.1:4222"),
                cluster, Instant.now().minusSeconds(60), expires).encode(new ObjectMapper(), issuer);
    }

    private static String body(String token) {
        return "{\"token\":\"" + token + "\"}";
    }

    @Test
    @Order(1)
    void changingStateNeedsTheAdminCredential() {
        given().post("/api/v1/join-tokens").then().statusCode(401).contentType("application/problem+json")
                .header("WWW-Authenticate", startsWith("Bearer")).body("detail", containsString("Authorization: Bearer"));
        given().auth().oauth2("not-the-credential-at-all").post("/api/v1/join-tokens").then().statusCode(403)
                .body("type", containsString("wrong-credential"));
        given().body(body("x")).post("/api/v1/federation/join").then().statusCode(401);
        given().post("/api/v1/federation/leave").then().statusCode(401);
        given().delete("/api/v1/clusters/eu-west").then().statusCode(401);
        given().body("{\"duration\":\"60s\"}").post("/api/v1/federation/drain").then().statusCode(401);
        given().delete("/api/v1/federation/drain").then().statusCode(401);
        given().get("/api/v1/federation").then().statusCode(200).body("state", equalTo("Unfederated"));
    }

    @Test
    @Order(50)
    void aDrainIsAskedForWithADurationShownAndEndedEarly() {
        var admin = given().auth().oauth2(ADMIN);
        admin.body("{\"duration\":\"soon\"}").post("/api/v1/federation/drain").then().statusCode(400)
                .body("detail", containsString("field 'duration': 'soon' is not a duration"));
        given().auth().oauth2(ADMIN).body("{\"duration\":\"25h\"}").post("/api/v1/federation/drain").then().statusCode(400)
                .body("detail", containsString("1s to 24h"));
        given().auth().oauth2(ADMIN).body("{\"duration\":\"60s\",\"region\":\"eu-west\"}").post("/api/v1/federation/drain").then()
                .statusCode(400).body("detail", containsString("unknown field 'region'"));
        given().auth().oauth2(ADMIN).body("[]").post("/api/v1/federation/drain").then().statusCode(400);
        given().get("/api/v1/federation").then().statusCode(200).body("drainingUntil", org.hamcrest.Matchers.nullValue());
        given().auth().oauth2(ADMIN).body("{\"duration\":\"60s\"}").post("/api/v1/federation/drain").then().statusCode(200)
                .body("drainingUntil", org.hamcrest.Matchers.notNullValue());
        given().get("/api/v1/federation").then().body("drainingUntil", org.hamcrest.Matchers.notNullValue());
        given().auth().oauth2(ADMIN).delete("/api/v1/federation/drain").then().statusCode(200).body("drainingUntil", org.hamcrest.Matchers.nullValue());
    }

    @Test
    @Order(2)
    void malformedTokensAreRefusedSayingWhichPartIsWrong() {
        var admin = given().auth().oauth2(ADMIN);
        admin.body("not json").post("/api/v1/federation/join").then().statusCode(400).body("detail", containsString("not JSON"));
        given().auth().oauth2(ADMIN).body("{\"tok\":1}").post("/api/v1/federation/join").then().statusCode(400)
                .body("detail", containsString("\"token\""));
        given().auth().oauth2(ADMIN).body(body("abc")).post("/api/v1/federation/join").then().statusCode(400)
                .body("type", containsString("malformed-token")).body("detail", containsString("1 dot-separated part"));
        given().auth().oauth2(ADMIN).body(body("isthmus-join-v1.%%%.AAAA")).post("/api/v1/federation/join").then().statusCode(400)
                .body("detail", containsString("part 2"));
        given().auth().oauth2(ADMIN).body(body("isthmus-join-v1.e30.AAAA")).post("/api/v1/federation/join").then().statusCode(400)
                .body("detail", containsString("64"));
    }

    @Test
    @Order(3)
    void expiredAndMisdirectedTokensAreRefusedBeforeAnythingIsSent() throws Exception {
        given().auth().oauth2(ADMIN).body(body(token("acme", null, Instant.now().minusSeconds(5)))).post("/api/v1/federation/join")
                .then().statusCode(410).body("type", containsString("expired-token")).body("detail", containsString("expired at"));
        given().auth().oauth2(ADMIN).body(body(token("acme", "ap-south", Instant.now().plusSeconds(600)))).post("/api/v1/federation/join")
                .then().statusCode(403).body("detail", containsString("made for cluster 'ap-south'"));
        given().auth().oauth2(ADMIN).body(body(token("acme", null, Instant.now().plusSeconds(600)))).post("/api/v1/federation/join")
                .then().statusCode(503).body("type", containsString("nats-unavailable"));
        given().get("/api/v1/federation").then().statusCode(200).body("state", equalTo("Unfederated"));
    }

    @Test
    @Order(4)
    void tokenRequestsAreValidated() {
        given().auth().oauth2(ADMIN).body("{\"ttl\":\"forever\"}").post("/api/v1/join-tokens").then().statusCode(400)
                .body("detail", containsString("field 'ttl'"));
        given().auth().oauth2(ADMIN).body("{\"ttl\":\"48h\"}").post("/api/v1/join-tokens").then().statusCode(400)
                .body("detail", containsString("max-token-ttl"));
        given().auth().oauth2(ADMIN).body("{\"cluster\":\"Not_A_Label\"}").post("/api/v1/join-tokens").then().statusCode(400)
                .body("detail", containsString("field 'cluster'"));
        given().auth().oauth2(ADMIN).body("{\"clster\":\"eu-west\"}").post("/api/v1/join-tokens").then().statusCode(400)
                .body("detail", containsString("unknown field 'clster'"));
        given().get("/api/v1/federation").then().body("state", equalTo("Unfederated"));
    }

    @Test
    @Order(5)
    void theFirstTokenFoundsTheFederationAndAMemberCannotJoinAnother() throws Exception {
        String token = given().auth().oauth2(ADMIN).body("{\"cluster\":\"eu-west\",\"ttl\":\"10m\"}").post("/api/v1/join-tokens").then()
                .statusCode(201).body("federation", equalTo("acme")).body("issuer", equalTo("test-east"))
                .body("token", startsWith(JoinToken.PREFIX + ".")).extract().path("token");
        var parsed = JoinToken.parse(token, new ObjectMapper()).token();
        org.junit.jupiter.api.Assertions.assertEquals("eu-west", parsed.cluster());
        org.junit.jupiter.api.Assertions.assertEquals(List.of("nats://127.0.0.1:1"), parsed.natsUrls());
        given().get("/api/v1/federation").then().body("federation", equalTo("acme")).body("state", equalTo("Active"));
        given().auth().oauth2(ADMIN).body(body(token("other", null, Instant.now().plusSeconds(600)))).post("/api/v1/federation/join")
                .then().statusCode(409).body("type", containsString("already-member"));
        given().auth().oauth2(ADMIN).body(body(token)).post("/api/v1/federation/join").then().statusCode(409);
    }

    @Test
    @Order(6)
    void evictionNamesUnknownClustersAndRefusesSelf() {
        given().auth().oauth2(ADMIN).delete("/api/v1/clusters/nowhere").then().statusCode(404).body("type", containsString("unknown-cluster"));
        given().auth().oauth2(ADMIN).delete("/api/v1/clusters/test-east").then().statusCode(409)
                .body("detail", containsString("federation/leave"));
    }

    @Test
    @Order(7)
    void leavingMakesTheClusterUnfederatedAndASecondLeaveIsAConflict() {
        given().auth().oauth2(ADMIN).post("/api/v1/federation/leave").then().statusCode(200).body("state", equalTo("Unfederated"));
        given().auth().oauth2(ADMIN).post("/api/v1/federation/leave").then().statusCode(409).body("type", containsString("not-a-member"));
    }
}
