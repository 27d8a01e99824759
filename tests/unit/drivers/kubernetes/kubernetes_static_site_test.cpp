// static-site without an image on the Kubernetes runtime (manifests_static.hpp): the files
// of a real git repository at the deployed commit travel in immutable ConfigMaps, an
// initContainer unpacks (and builds) them, nginx serves them. Against the API-server double
// for what reaches the cluster, and with the real sh and tar for what the initContainer's
// script does with it (no container runtime here: the script is the part that would run).

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#include "drivers/kubernetes/manifests_static.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/base64.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/ports.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::kubernetes {

namespace {

using json = nlohmann::json;

// Bytes gzip cannot shrink (a site bigger than a ConfigMap once compressed).
std::string incompressible(size_t n) {
  std::string out(n, '\0');
  uint32_t x = 2463534242u;
  for (auto& c : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x & 0xff);
  }
  return out;
}

} // namespace

class KubernetesStaticSiteTest : public ::testing::Test {
protected:
  void SetUp() override {
    m_kubeconfig = testing::kube::write_kubeconfig(m_tmp.sub("kubeconfig"), m_api.url(), "    token: t\n");
    m_repo.write_file("README.md", "not served\n");
    m_repo.write_file("site/index.html", "<h1>docs v1</h1>\n");
    m_repo.write_file("site/css/app.css", "body { color: teal }\n");
    m_repo.write_file("site/.well-known/security.txt", "Contact: security@example.com\n");
    m_repo.write_file("site/a file with spaces.html", "spaces\n");
    m_commit = m_repo.commit("site v1");
  }
  std::unique_ptr<KubernetesDriver> make_driver(nlohmann::json extra = nlohmann::json::object()) {
    return testing::kube::make_driver(m_tmp.sub("home"), m_kubeconfig, std::move(extra));
  }
  // A static-site config without container_image: the runtime serves static.dir itself.
  DeploySpec spec(const std::string& name = "docs-1") {
    DeploySpec s = testing::kube::static_site_spec(name);
    s.env.repo = m_repo.path();
    s.env.commit = m_commit;
    s.config.static_site.dir = "site";
    s.config.keys_set = {"template", "static.dir"};
    return s;
  }
  // The site ConfigMaps (name -> object) the double holds in `ns`.
  std::map<std::string, json> site_configmaps(const std::string& ns) {
    std::map<std::string, json> out;
    for (const auto& o : m_api.objects("configmaps")) {
      std::string name = o["metadata"]["name"];
      if (o["metadata"].value("namespace", "") == ns && is_site_configmap_name(name)) {
        out[name] = o;
      }
    }
    return out;
  }
  // Lays the parts of `configmaps` out as the kubelet projects them into the
  // initContainer (a file per key), in `dir`.
  static void project(const std::vector<json>& configmaps, const std::string& dir) {
    ASSERT_TRUE(util::ensure_dir(dir).has_value());
    for (const auto& cm : configmaps) {
      json parts = cm.value("binaryData", json::object());
      for (const auto& [key, value] : parts.items()) {
        auto bytes = util::base64_decode(value.get<std::string>());
        ASSERT_TRUE(bytes.has_value());
        std::ofstream(dir + "/" + key, std::ios::binary) << *bytes;
      }
    }
  }
  // Runs the initContainer's script as the pod would: `sh -c SCRIPT idp-site ARGV...` with
  // its variables pointing into `root`.
  // `busybox`: under busybox's sh, with busybox's tar, cp, find… first on PATH, as in the
  // alpine images the pod runs (else the machine's sh and GNU tools).
  util::RunResult run_init_script(const std::string& root, const std::string& static_dir,
                                  const std::vector<std::string>& build = {}, bool busybox = false) {
    util::Command cmd;
    std::string path = "/usr/bin:/bin";
    if (busybox) {
      std::string applets = root + "/busybox-bin";
      EXPECT_TRUE(util::ensure_dir(applets).has_value());
      for (const char* a : {"sh", "cat", "tar", "gzip", "mkdir", "cp", "find", "wc", "printf", "true", "false"}) {
        std::filesystem::create_symlink(*util::find_executable("busybox"), applets + "/" + a);
      }
      path = applets + ":" + path;
      cmd.argv = {applets + "/sh"};
    } else {
      cmd.argv = {"sh"};
    }
    cmd.argv.insert(cmd.argv.end(), {"-c", site_init_script(), "idp-site"});
    cmd.argv.insert(cmd.argv.end(), build.begin(), build.end());
    cmd.env = {{"PATH", path},
               {"IDP_ARCHIVE_DIR", root + "/archive"},
               {"IDP_WORK_DIR", root + "/work"},
               {"IDP_SITE_DIR", root + "/site"},
               {"IDP_STATIC_DIR", static_dir},
               {"IDP_TERMINATION_LOG", root + "/termination-log"}};
    util::RunOptions opts;
    opts.timeout_ms = 60000;
    auto r = util::run(cmd, opts);
    EXPECT_TRUE(r.has_value()) << r.error().full_message();
    return r ? *r : util::RunResult{};
  }
  static std::vector<json> of_kind(const std::vector<json>& objects, const std::string& kind) {
    std::vector<json> out;
    for (const auto& o : objects) {
      if (o["kind"] == kind) {
        out.push_back(o);
      }
    }
    return out;
  }

  testing::TempDir m_tmp;
  testing::GitRepo m_repo{m_tmp.sub("repo")};
  std::string m_commit;
  testing::FakeKubeApiServer m_api;
  std::string m_kubeconfig;
  testing::kube::RecordingProgress m_progress;
};

// The committed directory, without a build: its files (and only its files) reach the
// cluster in immutable ConfigMaps that nginx's pod unpacks; a redeploy with other files makes
// a new set and prunes the old one once the new pods roll out.
TEST_F(KubernetesStaticSiteTest, TheCommittedDirectoryIsServedFromConfigMapsAndARedeployPrunesTheOldSet) {
  auto d = make_driver();
  auto s = spec();
  auto r = d->apply(s, m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(r->url, "http://docs-1.preview.test");
  EXPECT_TRUE(r->warnings.empty()) << r->warnings[0];

  auto first = site_configmaps("docs-1");
  ASSERT_EQ(first.size(), 2u) << "one part and nginx's server block";
  for (const auto& [name, cm] : first) {
    EXPECT_TRUE(cm.value("immutable", false)) << name;
  }
  auto dep = m_api.object("deployments", "docs-1", "web");
  ASSERT_TRUE(dep.has_value());
  json pod = (*dep)["spec"]["template"]["spec"];
  EXPECT_EQ(pod["containers"][0]["image"], "nginx:1.27-alpine");
  EXPECT_EQ(pod["containers"][0]["ports"][0]["containerPort"], 80);
  ASSERT_EQ(pod["initContainers"].size(), 1u);
  json init = pod["initContainers"][0];
  EXPECT_EQ(init["image"], "nginx:1.27-alpine") << "no build: the web server's image unpacks";
  EXPECT_EQ(init["command"], json::array({"sh", "-c", site_init_script(), "idp-site"})) << "no build argv";
  std::set<std::string> used;
  for (const auto& name : site_configmaps_of((*dep)["spec"]["template"])) {
    used.insert(name);
  }
  for (const auto& [name, cm] : first) {
    EXPECT_TRUE(used.count(name)) << name << " is what the pod mounts";
  }

  // What the initContainer makes of those ConfigMaps, with the real sh and tar: exactly
  // static.dir's files, dot-directories and spaces included, nothing from outside it.
  std::vector<json> cms;
  for (const auto& [name, cm] : first) {
    cms.push_back(cm);
  }
  std::string root = m_tmp.sub("pod1");
  project(cms, root + "/archive");
  auto run = run_init_script(root, "site");
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(util::read_file(root + "/site/index.html").value_or(""), "<h1>docs v1</h1>\n");
  EXPECT_EQ(util::read_file(root + "/site/css/app.css").value_or(""), "body { color: teal }\n");
  EXPECT_EQ(util::read_file(root + "/site/.well-known/security.txt").value_or(""), "Contact: security@example.com\n");
  EXPECT_TRUE(util::path_exists(root + "/site/a file with spaces.html"));
  EXPECT_FALSE(util::path_exists(root + "/site/README.md"));
  EXPECT_FALSE(util::path_exists(root + "/work/README.md")) << "only static.dir is shipped";
  if (util::find_executable("busybox")) {
    // The same under busybox, as in nginx:alpine: git's tar is one busybox unpacks.
    std::string bb = m_tmp.sub("pod1-busybox");
    project(cms, bb + "/archive");
    auto with_busybox = run_init_script(bb, "site", {}, true);
    ASSERT_EQ(with_busybox.exit_code, 0) << with_busybox.out << with_busybox.err;
    EXPECT_EQ(util::read_file(bb + "/site/css/app.css").value_or(""), "body { color: teal }\n");
    EXPECT_EQ(util::read_file(bb + "/site/.well-known/security.txt").value_or(""), "Contact: security@example.com\n");
    EXPECT_TRUE(util::path_exists(bb + "/site/a file with spaces.html"));
  } else {
    ADD_FAILURE() << "busybox is not installed (scripts/install-deps.sh installs it)";
  }

  // Revision 2 with another index.html: a new part beside the old one (the template that
  // served until now keeps its files while its pods go); the server block, unchanged, is
  // the same ConfigMap. Revision 3: revision 1's part is pruned after the rollout.
  auto names = [&] {
    std::set<std::string> out;
    for (const auto& [name, cm] : site_configmaps("docs-1")) {
      out.insert(name);
    }
    return out;
  };
  auto mounted = [&] {
    auto v = site_configmaps_of(m_api.object("deployments", "docs-1", "web")->at("spec")["template"]);
    return std::set<std::string>(v.begin(), v.end());
  };
  std::set<std::string> v1 = mounted();
  m_repo.write_file("site/index.html", "<h1>docs v2</h1>\n");
  s.env.commit = m_repo.commit("site v2");
  s.revision_id = 2;
  auto r2 = d->apply(s, m_progress);
  ASSERT_TRUE(r2.has_value()) << r2.error().full_message();
  std::set<std::string> v2 = mounted();
  ASSERT_NE(v1, v2);
  std::set<std::string> both = v1;
  both.insert(v2.begin(), v2.end());
  EXPECT_EQ(both.size(), 3u) << "the server block is shared";
  EXPECT_EQ(names(), both);

  m_repo.write_file("site/index.html", "<h1>docs v3</h1>\n");
  s.env.commit = m_repo.commit("site v3");
  s.revision_id = 3;
  auto r3 = d->apply(s, m_progress);
  ASSERT_TRUE(r3.has_value()) << r3.error().full_message();
  std::set<std::string> v3 = mounted();
  std::set<std::string> kept = v2;
  kept.insert(v3.begin(), v3.end());
  EXPECT_EQ(names(), kept) << "revision 1's part is pruned; 2's stays while its pods go";

  ASSERT_TRUE(d->destroy(s.env, m_progress).has_value());
  EXPECT_TRUE(site_configmaps("docs-1").empty());
}

// static.spa is applied by the runtime's own nginx (no warning, unlike with an image of the
// config's); idp render shows the ConfigMaps; the same commit gives the same ConfigMaps, byte
// for byte (a retried apply re-applies them as they are: they are immutable).
TEST_F(KubernetesStaticSiteTest, SpaFallsBackToIndexHtmlAndTheSameCommitGivesTheSameConfigMaps) {
  auto d = make_driver();
  auto s = spec("docs-2");
  s.config.static_site.spa = true;
  auto objects = d->render_objects(s);
  ASSERT_TRUE(objects.has_value()) << objects.error().full_message();
  auto cms = of_kind(*objects, "ConfigMap");
  std::string conf;
  for (const auto& cm : cms) {
    conf += cm.value("data", json::object()).value("default.conf", "");
  }
  EXPECT_NE(conf.find("try_files $uri $uri/ /index.html;"), std::string::npos) << conf;
  EXPECT_EQ(conf, site_server_block(true));
  EXPECT_NE(site_server_block(false).find("=404"), std::string::npos);

  // Later (git stamps a tree with the current time, a commit with its own): the same bytes.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100)); // a new second, not a sync
  auto objects2 = d->render_objects(s);
  ASSERT_TRUE(objects2.has_value());
  EXPECT_EQ(of_kind(*objects2, "ConfigMap"), cms);
  ASSERT_TRUE(d->apply(s, m_progress).has_value());
  auto retried = d->apply(s, m_progress);
  ASSERT_TRUE(retried.has_value()) << retried.error().full_message();

  auto yaml = d->render(s);
  ASSERT_TRUE(yaml.has_value());
  EXPECT_NE(yaml->find("kind: ConfigMap"), std::string::npos);
  EXPECT_NE(yaml->find("initContainers:"), std::string::npos);
}

// With local.build the whole tree ships and the build runs in the pod, in the build image,
// with the config's variables: as argv, never through a shell. The script, run for real:
// the build's output is what gets served; a hostile argument stays an argument.
TEST_F(KubernetesStaticSiteTest, ABuildRunsInThePodOnTheWholeTreeAsArgvNeverThroughAShell) {
  m_repo.write_file("build.sh", "set -e\nmkdir -p 'dist out'\nprintf '<p>%s</p>\\n' \"$1\" > 'dist out/index.html'\n");
  m_repo.write_file("src/page.txt", "source\n");
  std::string commit = m_repo.commit("with a build");
  auto d = make_driver({{"static_build_image", "node:20-bookworm-slim"}});
  auto s = spec("docs-3");
  s.env.commit = commit;
  s.config.local.build = "sh build.sh '$(touch PWNED); echo pwned'";
  s.config.static_site.dir = "dist out";
  s.config.environment = {{"SITE_TITLE", "Docs"}};
  auto objects = d->render_objects(s);
  ASSERT_TRUE(objects.has_value()) << objects.error().full_message();
  auto dep = of_kind(*objects, "Deployment");
  ASSERT_EQ(dep.size(), 1u);
  json init = dep[0]["spec"]["template"]["spec"]["initContainers"][0];
  EXPECT_EQ(init["image"], "node:20-bookworm-slim");
  EXPECT_EQ(init["command"],
            json::array({"sh", "-c", site_init_script(), "idp-site", "sh", "build.sh", "$(touch PWNED); echo pwned"}));
  ASSERT_TRUE(init.contains("envFrom")) << "the build sees the config's variables";
  EXPECT_EQ(init["envFrom"][0]["secretRef"]["name"],
            dep[0]["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"]);
  bool dir_set = false;
  for (const auto& e : init["env"]) {
    dir_set = dir_set || (e["name"] == "IDP_STATIC_DIR" && e["value"] == "dist out");
  }
  EXPECT_TRUE(dir_set) << init["env"].dump();

  std::string root = m_tmp.sub("pod3");
  project(of_kind(*objects, "ConfigMap"), root + "/archive");
  std::vector<std::string> build(init["command"].begin() + 4, init["command"].end());
  auto run = run_init_script(root, "dist out", build);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_EQ(util::read_file(root + "/site/index.html").value_or(""), "<p>$(touch PWNED); echo pwned</p>\n");
  EXPECT_FALSE(util::path_exists(root + "/work/PWNED")) << "the argument never went through a shell";
  EXPECT_TRUE(util::path_exists(root + "/work/src/page.txt")) << "the whole tree was shipped for the build";

  // A failing build, and a build that leaves no index.html: the pod's status says which.
  std::string fail_root = m_tmp.sub("pod3-fail");
  project(of_kind(*objects, "ConfigMap"), fail_root + "/archive");
  auto failed = run_init_script(fail_root, "dist out", {"sh", "-c", "exit 3"});
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_EQ(util::read_file(fail_root + "/termination-log").value_or(""), "the build (sh) exited with status 3\n");
  std::string empty_root = m_tmp.sub("pod3-empty");
  project(of_kind(*objects, "ConfigMap"), empty_root + "/archive");
  auto empty = run_init_script(empty_root, "nowhere", {"true"});
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_EQ(util::read_file(empty_root + "/termination-log").value_or(""), "static.dir nowhere has no index.html\n");
}

// A build that fails in the pod: the rollout fails with the init container's reason (the
// termination message the script leaves), the Deployment goes back to the template that
// served, whose site ConfigMaps are all still there; the next good deploy prunes the failed set.
TEST_F(KubernetesStaticSiteTest, AFailedBuildInThePodFailsTheRolloutWithItsReasonAndRollsBack) {
  auto d = make_driver();
  auto s = spec("docs-6");
  auto r1 = d->apply(s, m_progress);
  ASSERT_TRUE(r1.has_value()) << r1.error().full_message();
  auto served = site_configmaps_of(m_api.object("deployments", "docs-6", "web")->at("spec")["template"]);

  m_api.fail_init_containers_with("broken-build", "the build (npm) exited with status 1");
  auto broken = s;
  broken.revision_id = 2;
  broken.config.local.build = "npm run broken-build";
  broken.config.static_site.dir = "dist";
  auto broken_objects = d->render_objects(broken);
  ASSERT_TRUE(broken_objects.has_value()) << broken_objects.error().full_message();
  json broken_template = of_kind(*broken_objects, "Deployment").at(0)["spec"]["template"];
  auto r2 = d->apply(broken, m_progress);
  ASSERT_FALSE(r2.has_value());
  std::string msg = r2.error().full_message();
  EXPECT_NE(msg.find("init container site: CrashLoopBackOff (exit 1: the build (npm) exited with status 1)"),
            std::string::npos)
      << msg;
  EXPECT_EQ(msg.find("container app: PodInitializing"), std::string::npos)
      << "waiting for the init is no reason: " << msg;
  EXPECT_NE(msg.find("rolled back to the pod template of revision 1"), std::string::npos) << msg;
  auto back = site_configmaps_of(m_api.object("deployments", "docs-6", "web")->at("spec")["template"]);
  EXPECT_EQ(back, served);
  auto present = site_configmaps("docs-6");
  for (const auto& name : served) {
    EXPECT_TRUE(present.count(name)) << name << " is what the rolled-back pods mount";
  }

  m_repo.write_file("site/index.html", "<h1>docs v3</h1>\n");
  s.env.commit = m_repo.commit("site v3");
  s.revision_id = 3;
  auto failed_set = site_configmaps_of(broken_template);
  auto r3 = d->apply(s, m_progress);
  ASSERT_TRUE(r3.has_value()) << r3.error().full_message();
  auto left = site_configmaps("docs-6");
  EXPECT_EQ(left.size(), 3u) << "revision 3's part, revision 1's (it served until now) and the server block";
  for (const auto& name : failed_set) {
    if (name.find("nginx") == std::string::npos) {
      EXPECT_FALSE(left.count(name)) << name << ": the failed build's part is pruned";
    }
  }
}

// A site too big for ConfigMaps, a static.dir the commit does not have or without an
// index.html, a local.build that is not a command line: a clear error each, nothing
// applied. A site of several parts splits under the API server's limit per ConfigMap.
TEST_F(KubernetesStaticSiteTest, WhatCannotBeServedIsAClearErrorAndNothingIsApplied) {
  m_repo.write_file("site/video.bin", incompressible(2 * 1024 * 1024 + 1000));
  std::string big = m_repo.commit("a big file");
  auto d = make_driver({{"static_max_bytes", 1024 * 1024}});
  auto s = spec("docs-4");
  s.env.commit = big;
  auto r = d->apply(s, m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  EXPECT_NE(r.error().full_message().find("static_max_bytes"), std::string::npos) << r.error().full_message();
  EXPECT_NE(r.error().full_message().find("container_image"), std::string::npos) << r.error().full_message();
  EXPECT_FALSE(m_api.object("namespaces", "", "docs-4").has_value()) << "nothing applied";

  // Under the default limit it goes out in parts of at most k_site_part_bytes, each
  // ConfigMap under the server's 1 MiB (the double refuses more, as a real server does).
  auto roomy = make_driver();
  auto ok = roomy->apply(s, m_progress);
  ASSERT_TRUE(ok.has_value()) << ok.error().full_message();
  size_t parts = 0;
  for (const auto& [name, cm] : site_configmaps("docs-4")) {
    json data = cm.value("binaryData", json::object());
    for (const auto& [key, value] : data.items()) {
      ++parts;
      EXPECT_LE(util::base64_decode(value.get<std::string>())->size(), k_site_part_bytes) << name;
    }
  }
  EXPECT_EQ(parts, 3u) << "2 MB incompressible: three parts";

  auto no_index = spec("docs-5");
  no_index.config.static_site.dir = "site/css";
  auto refused = d->apply(no_index, m_progress);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::invalid_config);
  EXPECT_NE(refused.error().message.find("has no index.html"), std::string::npos) << refused.error().message;

  auto missing = spec("docs-5");
  missing.config.static_site.dir = "public";
  missing.config.local.build = "npm run build";
  auto built_missing = d->render_objects(missing);
  ASSERT_TRUE(built_missing.has_value()) << "with a build, static.dir is made by the build, in the pod";
  missing.config.local.build = "";
  auto not_there = d->apply(missing, m_progress);
  ASSERT_FALSE(not_there.has_value());
  EXPECT_EQ(not_there.error().code, ErrorCode::invalid_config);

  auto bad_build = spec("docs-5");
  bad_build.config.local.build = "npm run 'build";
  auto unparsed = d->apply(bad_build, m_progress);
  ASSERT_FALSE(unparsed.has_value());
  EXPECT_EQ(unparsed.error().code, ErrorCode::invalid_config);
  EXPECT_NE(unparsed.error().message.find("local.build"), std::string::npos) << unparsed.error().message;
  EXPECT_FALSE(m_api.object("namespaces", "", "docs-5").has_value()) << "nothing applied";
}

// The real nginx with the server block the pod gets (its port and root moved into a temp
// directory): the site's files, index.html for a path of the client-side router under
// static.spa, a 404 (not HTML) for a missing asset, and a 404 without spa.
TEST_F(KubernetesStaticSiteTest, NginxWithThePodsServerBlockServesTheSiteAndSpaFallsBackOnlyForRoutes) {
  auto nginx = util::find_executable("nginx");
  if (!nginx) {
    for (const char* p : {"/usr/sbin/nginx", "/sbin/nginx"}) {
      if (util::path_exists(p)) {
        nginx = std::string(p);
      }
    }
  }
  ASSERT_TRUE(nginx.has_value()) << "nginx is not installed (scripts/install-deps.sh installs nginx-light)";
  std::string root = m_tmp.sub("nginx");
  std::string html = root + "/html";
  ASSERT_TRUE(util::ensure_dir(html + "/assets").has_value());
  std::ofstream(html + "/index.html") << "<h1>spa shell</h1>\n";
  std::ofstream(html + "/assets/app.js") << "console.log(1)\n";
  for (bool spa : {true, false}) {
    auto port = util::find_free_port();
    ASSERT_TRUE(port.has_value());
    std::string conf = site_server_block(spa);
    auto swap = [&](const std::string& from, const std::string& to) {
      size_t at = conf.find(from);
      ASSERT_NE(at, std::string::npos) << from << " in " << conf;
      conf.replace(at, from.size(), to);
    };
    swap("listen 80;", "listen 127.0.0.1:" + std::to_string(*port) + ";");
    swap("root /usr/share/nginx/html;", "root " + html + ";");
    std::string dir = root + (spa ? "/spa" : "/plain");
    ASSERT_TRUE(util::ensure_dir(dir).has_value());
    std::ofstream(dir + "/default.conf") << conf;
    std::ofstream(dir + "/nginx.conf") << (::geteuid() == 0 ? "user root;\n" : "")
                                       << "daemon off;\nmaster_process off;\n"
                                       << "pid " << dir << "/nginx.pid;\nerror_log " << dir << "/error.log;\n"
                                       << "events {}\nhttp {\n  access_log off;\n  client_body_temp_path " << dir
                                       << ";\n  proxy_temp_path " << dir << ";\n  fastcgi_temp_path " << dir
                                       << ";\n  uwsgi_temp_path " << dir << ";\n  scgi_temp_path " << dir
                                       << ";\n  include " << dir << "/default.conf;\n}\n";
    std::atomic<bool> stop{false};
    util::RunResult result;
    std::thread server([&] {
      util::Command cmd;
      cmd.argv = {*nginx, "-p", dir, "-c", dir + "/nginx.conf"};
      util::RunOptions opts;
      opts.cancel = &stop;
      opts.merge_stderr = true;
      auto r = util::run(cmd, opts);
      if (r) {
        result = *r;
      }
    });
    auto get = [&](const std::string& path) {
      util::HttpRequest req;
      req.url = "http://127.0.0.1:" + std::to_string(*port) + path;
      req.timeout_ms = 5000;
      auto r = util::http_request(req);
      return r ? *r : util::HttpResponse{};
    };
    bool up = testing::wait_until([&] { return get("/").status == 200; }, 20000);
    if (up) {
      EXPECT_EQ(get("/").body, "<h1>spa shell</h1>\n");
      EXPECT_EQ(get("/assets/app.js").body, "console.log(1)\n");
      EXPECT_EQ(get("/assets/missing.js").status, 404) << "a missing asset is never HTML";
      auto route = get("/settings/profile");
      EXPECT_EQ(route.status, spa ? 200 : 404);
      if (spa) {
        EXPECT_EQ(route.body, "<h1>spa shell</h1>\n") << "the client-side router's path gets index.html";
      }
    }
    stop = true;
    server.join();
    ASSERT_TRUE(up) << "nginx did not serve: " << result.out << util::read_file(dir + "/error.log").value_or("");
  }
}

} // namespace idp::drivers::kubernetes
