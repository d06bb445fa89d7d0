#include "host/http/http_server.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "common/json.h"
#include "host/http/errors.h"
#include "host/http/http_client.h"
#include "tests/support/raw_http.h"

namespace fpgahost::http {
namespace {

using namespace std::chrono_literals;
using testing::RawConnection;

// Counts what it is given; refuses bodies that start with "BAD".
class CountingSink : public BodySink {
 public:
  struct Events {
    std::mutex mu;
    std::condition_variable cv;
    size_t pieces = 0;
    size_t bytes = 0;
    std::string aborted;  // reason of the Abort, if any
  };
  CountingSink(Responder respond, Events& events) : respond_(std::move(respond)), e_(events) {}
  Status Write(std::string_view piece) override {
    if (e_.bytes == 0 && piece.starts_with("BAD")) {
      return InvalidArgumentError("body starts with BAD", "BAD_BODY");
    }
    std::lock_guard<std::mutex> lock(e_.mu);
    e_.pieces++;
    e_.bytes += piece.size();
    return Status::Ok();
  }
  void Finish() override {
    respond_(JsonResponse(Json{{"bytes", e_.bytes}, {"pieces", e_.pieces}}.dump()));
  }
  void Abort(const Status& why) override {
    std::lock_guard<std::mutex> lock(e_.mu);
    e_.aborted = std::string(why.reason());
    e_.cv.notify_all();
  }

 private:
  Responder respond_;
  Events& e_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  CountingSink::Events sink_events_;
  void Start(ServerOptions options = {}) {
    options.port = 0;
    auto router = std::make_unique<Router>();
    router->Add("GET", "/echo/{word}", [](Request& req, Responder respond) {
      Json body = {{"word", req.params.at("word")}, {"q", req.query["q"]}};
      respond(JsonResponse(body.dump()));
    });
    router->Add("GET", "/peer", [](Request& req, Responder respond) {
      respond(JsonResponse(Json{{"remote", req.remote}}.dump()));
    });
    router->Add("POST", "/body", [](Request& req, Responder respond) {
      respond(JsonResponse(Json{{"size", req.body.size()}}.dump()));
    });
    router->Add(
        "POST", "/small",
        [](Request& req, Responder respond) {
          respond(JsonResponse(Json{{"size", req.body.size()}}.dump()));
        },
        RouteOptions{.max_body_bytes = 10});
    // Answers from another thread once the test releases it: a long poll.
    router->Add("GET", "/later", [this](Request&, Responder respond) {
      std::thread([this, respond = std::move(respond)] {
        release_.get_future().wait();
        respond(JsonResponse("{\"late\":true}"));
      }).detach();
      entered_.set_value();
    });
    router->AddStreaming(
        "PUT", "/upload",
        [this](Request& req, Responder respond) -> std::unique_ptr<BodySink> {
          if (req.query.count("refuse") != 0u) {
            respond(ErrorResponse(PermissionDeniedError("no"), req.request_id));
            return nullptr;
          }
          return std::make_unique<CountingSink>(std::move(respond), sink_events_);
        },
        RouteOptions{.max_body_bytes = 8 << 20});
    auto server = HttpServer::Listen(options);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    server_->Serve(std::move(router));
  }

  StatusOr<ClientResponse> Get(const std::string& target) {
    ClientRequest req;
    req.target = target;
    return Send(Endpoint{"127.0.0.1", server_->port()}, req);
  }

  std::promise<void> entered_;
  std::promise<void> release_;
  std::unique_ptr<HttpServer> server_;
};

Json ErrorOf(const std::string& raw_response) {
  size_t body = raw_response.find("\r\n\r\n");
  if (body == std::string::npos) return Json();
  Json j = Json::parse(raw_response.substr(body + 4), nullptr, false);
  return j.is_discarded() ? Json() : j["error"];
}

TEST_F(HttpServerTest, RoutesWithParamsQueryAndRequestId) {
  Start();
  auto r = Get("/echo/hello?q=a%20b");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200u);
  EXPECT_EQ(Json::parse(r->body), (Json{{"word", "hello"}, {"q", "a b"}}));
  EXPECT_TRUE(r->headers.at("x-request-id").starts_with("req-"));
}

TEST_F(HttpServerTest, UnknownPathAndMethodGetTheEnvelope) {
  Start();
  auto r = Get("/nothing");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404u);
  Json e = Json::parse(r->body)["error"];
  EXPECT_EQ(e["code"], "UNKNOWN_PATH");
  EXPECT_EQ(e["request_id"], r->headers.at("x-request-id"));
  ClientRequest del;
  del.method = "DELETE";
  del.target = "/echo/x";
  auto d = Send(Endpoint{"127.0.0.1", server_->port()}, del);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status, 405u);
}

TEST_F(HttpServerTest, MalformedRequestGets400AndServerKeepsServing) {
  Start();
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  c.Send("GARBAGE\x01\x02 / HTTP/9\r\n\r\n");
  std::string res = c.Read(2s);
  EXPECT_TRUE(res.starts_with("HTTP/1.1 400")) << res;
  EXPECT_EQ(ErrorOf(res)["code"], "MALFORMED_REQUEST");
  auto ok = Get("/echo/still");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200u);
}

TEST_F(HttpServerTest, OversizedHeaderGets431) {
  ServerOptions o;
  o.max_header_bytes = 2048;
  Start(o);
  RawConnection c(server_->port());
  c.Send("GET /echo/x HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n");
  std::string res = c.Read(2s);
  EXPECT_TRUE(res.starts_with("HTTP/1.1 431")) << res.substr(0, 100);
  EXPECT_EQ(ErrorOf(res)["code"], "HEADER_TOO_LARGE");
}

TEST_F(HttpServerTest, OversizedBodyGets413PerRouteLimit) {
  Start();
  ClientRequest req;
  req.method = "POST";
  req.target = "/small";
  req.body = std::string(11, 'x');
  auto r = Send(Endpoint{"127.0.0.1", server_->port()}, req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 413u);
  EXPECT_EQ(Json::parse(r->body)["error"]["code"], "BODY_TOO_LARGE");
  req.target = "/body";  // the server-wide default (1 MiB) lets it through
  auto ok = Send(Endpoint{"127.0.0.1", server_->port()}, req);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(Json::parse(ok->body)["size"], 11);
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Start();
  RawConnection c(server_->port());
  c.Send("GET /echo/one HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(c.Read(2s, "one\"}").find("200 OK"), std::string::npos);
  c.Send("GET /echo/two HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_NE(c.Read(2s, "two\"}").find("\"two\""), std::string::npos);
}

// The client side of keep-alive: http::Connection.
std::string RemoteOf(Connection& c, const std::string& method = "GET") {
  ClientRequest req;
  req.method = method;
  req.target = method == "GET" ? "/peer" : "/body";
  StatusOr<ClientResponse> r = c.Send(req);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return "";
  EXPECT_EQ(r->status, 200u) << r->body;
  return Json::parse(r->body).value("remote", "(no remote)");
}

TEST_F(HttpServerTest, AClientConnectionSendsItsRequestsOnOneConnection) {
  Start();
  Connection c(Endpoint{"127.0.0.1", server_->port()});
  std::string first = RemoteOf(c);
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(RemoteOf(c), first);
  EXPECT_EQ(RemoteOf(c), first);
  // A second client is a second connection.
  Connection other(Endpoint{"127.0.0.1", server_->port()});
  EXPECT_NE(RemoteOf(other), first);
}

TEST_F(HttpServerTest, AClientConnectionReconnectsAfterTheServerClosedIt) {
  ServerOptions o;
  o.idle_timeout = 100ms;
  Start(o);
  Connection c(Endpoint{"127.0.0.1", server_->port()});
  std::string first = RemoteOf(c);
  std::this_thread::sleep_for(500ms);  // the server closes the idle connection
  std::string second = RemoteOf(c);
  EXPECT_FALSE(second.empty());
  EXPECT_NE(second, first);
  std::this_thread::sleep_for(500ms);
  // A POST too: the closed connection is noticed before the request is sent.
  RemoteOf(c, "POST");
}

TEST_F(HttpServerTest, AClientConnectionToNoServerIsUnavailable) {
  Start();
  uint16_t port = server_->port();
  server_.reset();  // the port is closed
  Connection c(Endpoint{"127.0.0.1", port});
  ClientRequest req;
  req.target = "/peer";
  StatusOr<ClientResponse> r = c.Send(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("cannot connect"), std::string_view::npos)
      << r.status().message();
}

TEST_F(HttpServerTest, IdleConnectionIsClosed) {
  ServerOptions o;
  o.idle_timeout = 200ms;
  Start(o);
  RawConnection c(server_->port());
  std::string got = c.Read(5s);
  EXPECT_TRUE(got.empty());
  EXPECT_TRUE(c.closed());
}

TEST_F(HttpServerTest, HandlerMayAnswerLaterFromAnotherThread) {
  Start();
  auto pending = std::async(std::launch::async, [this] { return Get("/later"); });
  entered_.get_future().wait();
  // While one request waits, the server still answers others.
  auto other = Get("/echo/meanwhile");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->status, 200u);
  release_.set_value();
  auto r = pending.get();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Json::parse(r->body)["late"], true);
}

TEST_F(HttpServerTest, ShutdownLetsInFlightRequestFinish) {
  Start();
  auto pending = std::async(std::launch::async, [this] { return Get("/later"); });
  entered_.get_future().wait();
  auto stopper = std::async(std::launch::async, [this] { server_->Shutdown(); });
  std::this_thread::sleep_for(100ms);
  release_.set_value();
  stopper.get();
  auto r = pending.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200u);
}

TEST_F(HttpServerTest, PortInUseIsAClearError) {
  Start();
  ServerOptions o;
  o.port = server_->port();
  auto second = HttpServer::Listen(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().reason(), "ADDRESS_IN_USE");
  EXPECT_NE(second.status().message().find("already in use"), std::string_view::npos);
}

TEST_F(HttpServerTest, StreamingRouteGetsTheBodyInPieces) {
  Start();
  ClientRequest req;
  req.method = "PUT";
  req.target = "/upload";
  req.body = std::string(3 << 20, 'x');
  auto r = Send(Endpoint{"127.0.0.1", server_->port()}, req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200u) << r->body;
  Json body = Json::parse(r->body);
  EXPECT_EQ(body["bytes"], 3u << 20);
  EXPECT_GT(body["pieces"].get<int>(), 1);
}

TEST_F(HttpServerTest, StreamingSinkErrorAnswersEarly) {
  Start();
  ClientRequest req;
  req.method = "PUT";
  req.target = "/upload";
  req.body = "BAD" + std::string(1 << 20, 'x');
  auto r = Send(Endpoint{"127.0.0.1", server_->port()}, req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 400u);
  EXPECT_EQ(Json::parse(r->body)["error"]["code"], "BAD_BODY");
  std::lock_guard<std::mutex> lock(sink_events_.mu);
  EXPECT_EQ(sink_events_.aborted, "BAD_BODY");
}

TEST_F(HttpServerTest, StreamingRefusedBeforeTheBody) {
  Start();
  ClientRequest req;
  req.method = "PUT";
  req.target = "/upload?refuse";
  req.body = std::string(1 << 20, 'x');
  auto r = Send(Endpoint{"127.0.0.1", server_->port()}, req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 403u);
}

TEST_F(HttpServerTest, StreamingOverTheRouteLimitIs413) {
  Start();
  RawConnection c(server_->port());
  c.Send("PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999\r\n\r\n");
  std::string res = c.Read(2s);
  EXPECT_TRUE(res.starts_with("HTTP/1.1 413")) << res;
}

TEST_F(HttpServerTest, ClientVanishingMidUploadAbortsTheSink) {
  Start();
  {
    RawConnection c(server_->port());
    c.Send("PUT /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n");
    c.Send(std::string(300000, 'y'));
    std::this_thread::sleep_for(100ms);
  }  // closed with 700000 bytes missing
  std::unique_lock<std::mutex> lock(sink_events_.mu);
  ASSERT_TRUE(sink_events_.cv.wait_for(lock, 5s, [this] { return !sink_events_.aborted.empty(); }));
  EXPECT_EQ(sink_events_.aborted, "UPLOAD_INTERRUPTED");
  EXPECT_LE(sink_events_.bytes, 300000u);
}

TEST_F(HttpServerTest, ExpectContinueIsAnsweredBeforeTheBody) {
  Start();
  for (const char* route : {"/body", "/upload"}) {
    RawConnection c(server_->port());
    std::string method = std::string(route) == "/body" ? "POST" : "PUT";
    c.Send(method + " " + route +
           " HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    std::string interim = c.Read(2s, "\r\n\r\n");
    EXPECT_TRUE(interim.starts_with("HTTP/1.1 100 Continue")) << route << ": " << interim;
    c.Send("hello");
    std::string final_answer = c.Read(2s, "}");
    EXPECT_NE(final_answer.find("200 OK"), std::string::npos) << route << ": " << final_answer;
  }
}

TEST(HttpErrorsTest, StatusTableCoversTheApiContract) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400u);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnauthenticated), 401u);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPermissionDenied), 403u);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404u);
  EXPECT_EQ(HttpStatusFor(StatusCode::kConflict), 409u);
  EXPECT_EQ(HttpStatusFor(StatusCode::kPayloadTooLarge), 413u);
  EXPECT_EQ(HttpStatusFor(StatusCode::kResourceExhausted), 429u);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInternal), 500u);
  Response r = ErrorResponse(UnauthenticatedError("no token", "MISSING_TOKEN"), "req-1");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(
      Json::parse(r.body),
      (Json{{"error",
             {{"code", "MISSING_TOKEN"}, {"message", "no token"}, {"request_id", "req-1"}}}}));
}

}  // namespace
}  // namespace fpgahost::http
