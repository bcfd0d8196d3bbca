package dev.isthmus.controller.api;

import jakarta.ws.rs.core.Response;

/**
 * An RFC 9457 problem document: what went wrong, in words a person can act on.
 *
 * @param type a URI naming the kind of problem
 * @param title a short summary of the kind
 * @param status the HTTP status
 * @param detail what exactly was wrong with this request, and where
 */
public record Problem(String type, String title, int status, String detail) {

    public static final String MEDIA_TYPE = "application/problem+json";

    public static Response response(Response.Status status, String kind, String title, String detail) {
        return Response.status(status).type(MEDIA_TYPE)
                .entity(new Problem("https://isthmus.dev/problems/" + kind, title, status.getStatusCode(), detail)).build();
    }

    public static Response badRequest(String detail) {
        return response(Response.Status.BAD_REQUEST, "invalid-request", "The request is not valid", detail);
    }
}
