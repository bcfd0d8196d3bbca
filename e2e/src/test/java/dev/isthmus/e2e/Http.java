package dev.isthmus.e2e;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.function.Predicate;

/**
 * HTTP calls for the e2e tests, with polling until a condition holds. HTTP/1.1 only: the JDK client's
 * default h2c upgrade was seen to hang on a large answer from a Quarkus server with gRPC (the
 * request timeout does not cover the body), which stalled a whole CI run.
 */
final class Http {

    private static final HttpClient CLIENT = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(2)).build();

    private Http() {
    }

    static HttpResponse<String> get(String url) throws Exception {
        return CLIENT.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** Polls {@code url} until the body satisfies {@code condition}; returns the last body. */
    static String await(String url, Duration timeout, Predicate<String> condition) throws Exception {
        Instant deadline = Instant.now().plus(timeout);
        String last = "";
        while (Instant.now().isBefore(deadline)) {
            try {
                last = get(url).body();
                if (condition.test(last)) {
                    return last;
                }
            } catch (java.io.IOException e) {
                last = e.toString();
            }
            Thread.sleep(100);
        }
        throw new AssertionError("within " + timeout.toMillis() + " ms, " + url + " never answered as expected; last answer: " + last);
    }
}
