//! The MCP server: five tools and one prompt over an [`Index`] and, where the process has
//! one, a [`LiveCluster`]. Each tool answers compact structured JSON; every failure is a
//! tool error (`isError`) whose message says what to change or try.

use std::sync::Arc;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{PromptMessage, Role, ServerCapabilities, ServerConfig};
use rmcp::{prompt, prompt_handler, prompt_router, tool, tool_handler, tool_router, ServerHandler};
use sync_model::search::{Collection, CountBody, SearchMode, SearchRequest};
use sync_model::ResourceId;

use crate::cluster::{ClusterError, LiveCluster, ObjectRef};
use crate::cursor;
use crate::index::{Index, IndexError};
use crate::resource::{owner_of, summarise, ResourceDetails};
use crate::tools::*;

/// The ranked search reads at most this many hits; pages stop there.
pub const RANKING_WINDOW: usize = 1_000;
/// Owners followed above an object at most (Pod → ReplicaSet → Deployment → operator CR).
const MAX_OWNERS: usize = 5;

/// What the server knows of the cluster it serves.
#[derive(Clone)]
pub struct ClusterAccess {
    /// The cluster's name (its kubeconfig context), or `default`.
    pub name: String,
    /// Live reads for `get_resource`; `None` where the process has no kubeconfig.
    pub live: Option<Arc<dyn LiveCluster>>,
    /// Why there is no live access, said to the model (e.g. which flag gives it).
    pub no_access_hint: String,
}

impl ClusterAccess {
    /// No cluster access: `get_resource` answers with `hint`.
    pub fn none(hint: impl Into<String>) -> Self {
        ClusterAccess {
            name: "default".into(),
            live: None,
            no_access_hint: hint.into(),
        }
    }
}

/// cw's MCP server. Cheap to clone: the Streamable HTTP service makes one per session.
#[derive(Clone)]
pub struct CwMcp {
    index: Arc<dyn Index>,
    cluster: ClusterAccess,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

const INSTRUCTIONS: &str = "cw keeps a searchable index of what runs in a Kubernetes cluster. \
Start with ask (a question in plain words: the resource types that answer it and their \
instances) or search_resources (filters and free text; mode=count or group_by to size a result \
before listing it). Hits carry an id: pass it to get_resource for live status, conditions, \
events and owners. Answers are paged: follow nextCursor only when you need more.";

#[tool_router]
impl CwMcp {
    pub fn new(index: Arc<dyn Index>, cluster: ClusterAccess) -> Self {
        CwMcp {
            index,
            cluster,
            tool_router: Self::tool_router(),
            prompt_router: Self::prompt_router(),
        }
    }

    #[tool(
        description = "Find Kubernetes objects in the index by free text and/or exact filters \
(kind, apiGroup, namespace, labels k=v, health: Current, InProgress, Failed, Terminating, \
Unknown, or unhealthy = Failed or InProgress, healthy, failing, progressing). \
mode=list (default) returns one page of compact hits (id, kind, namespace, name, a few labels, \
health with its reason, score) and a nextCursor when more exist; mode=count \
returns only the number of matching objects; mode=group_by returns counts per kind, namespace or health. \
Use count or group_by first when a filter may match many objects, then list with a narrower \
filter. The query is optional when a filter is given. Pass a hit's id to get_resource for \
live details.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_resources(
        &self,
        Parameters(p): Parameters<SearchResourcesParams>,
    ) -> Result<Json<SearchAnswer>, String> {
        let mode = ResultMode::parse(p.mode.as_deref(), p.group_by.as_deref())?;
        let health = crate::tools::parse_health(p.health.as_deref())?;
        let query = non_empty(p.query.as_deref()).unwrap_or_default();
        let request = SearchRequest {
            query: query.clone(),
            collection: Collection::Instances,
            cluster: non_empty(p.cluster.as_deref()),
            kind: non_empty(p.kind.as_deref()),
            api_group: normalise_group(p.api_group.as_deref()),
            namespace: non_empty(p.namespace.as_deref()),
            labels: p.labels.iter().map(|l| l.trim().to_string()).collect(),
            health,
            limit: None,
            mode: if query.is_empty() {
                SearchMode::Keyword
            } else {
                SearchMode::Hybrid
            },
        };
        match mode {
            ResultMode::Count | ResultMode::GroupBy(_) => {
                let group_by = match mode {
                    ResultMode::GroupBy(g) => Some(g),
                    _ => None,
                };
                let counted = self
                    .index
                    .count(&CountBody { request, group_by })
                    .await
                    .map_err(index_error)?;
                let mut groups: Vec<GroupCountLine> =
                    counted.groups.into_iter().map(Into::into).collect();
                let other = groups
                    .get(MAX_GROUPS..)
                    .map(|rest| rest.iter().map(|g| g.count).sum::<usize>());
                groups.truncate(MAX_GROUPS);
                Ok(Json(SearchAnswer {
                    mode: if group_by.is_some() {
                        "group_by"
                    } else {
                        "count"
                    }
                    .into(),
                    total: Some(counted.total),
                    groups,
                    other_groups: other,
                    ..Default::default()
                }))
            }
            ResultMode::List => self.list_page(request, &p).await.map(Json),
        }
    }

    #[tool(
        description = "Find which resource types in the cluster can do something: 'database', \
'TLS certificates', 'message queue'. Answers the types (kind, API group, why they match) from \
the cluster's API discovery and CRD schemas, best first, without their instances. Use ask to \
get the types and their running instances in one call.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_capabilities(
        &self,
        Parameters(p): Parameters<CapabilitiesParams>,
    ) -> Result<Json<CapabilitiesAnswer>, String> {
        let query = non_empty(Some(&p.query))
            .ok_or("query must not be empty: say what the type should do, e.g. \"database\"")?;
        let limit = bounded(p.limit, 5, 20, "limit")?;
        let hits = self
            .index
            .search(&SearchRequest {
                query,
                collection: Collection::Capabilities,
                limit: Some(limit),
                ..Default::default()
            })
            .await
            .map_err(index_error)?;
        let types = hits
            .into_iter()
            .map(|h| {
                let group = h.id.split_once('.').map(|(_, g)| g).unwrap_or_default();
                TypeLine {
                    api_group: group.to_string(),
                    kind: h.kind,
                    score: round(h.score),
                    about: shorten(&h.document, 200),
                    id: h.id,
                }
            })
            .collect();
        Ok(Json(CapabilitiesAnswer { types }))
    }

    #[tool(
        description = "Answer a question about what runs in the cluster in one call: finds the \
resource types whose purpose matches the question (e.g. PostgreSQL and MySQL types for \
'what databases are running?'), then their running instances, best first. Filters narrow the \
types (kind, apiGroup) and the instances (namespace, labels, health: Failed for \
'which databases are failing?', unhealthy for Failed or InProgress). A question about health ('are any databases unhealthy?') \
is answered by its Failed and InProgress instances, or says that none is. Each instance carries its health with a reason when its status \
says one, and an id for get_resource for live details.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn ask(
        &self,
        Parameters(p): Parameters<AskParams>,
    ) -> Result<Json<AskAnswerLines>, String> {
        let question = non_empty(Some(&p.question)).ok_or(
            "question must not be empty: ask in plain words, e.g. \"what databases are running?\"",
        )?;
        let limit = bounded(p.limit, ASK_DEFAULT, ASK_MAX, "limit")?;
        let labels = parse_labels(&p.labels)?;
        let namespace = non_empty(p.namespace.as_deref());
        let kind = non_empty(p.kind.as_deref());
        let group = normalise_group(p.api_group.as_deref());
        let health = crate::tools::parse_health(p.health.as_deref())?;
        let filtered = namespace.is_some() || !labels.is_empty() || health.is_some();
        // Instances filtered out here are replaced by asking for more of each type.
        let fetch = if filtered { RANKING_WINDOW / 10 } else { limit };
        let answer = self
            .index
            .ask(&question, fetch, non_empty(p.cluster.as_deref()).as_deref())
            .await
            .map_err(index_error)?;
        let types: Vec<AskType> = answer
            .types
            .into_iter()
            .filter(|t| kind.as_ref().is_none_or(|k| &t.kind == k))
            .filter(|t| group.as_ref().is_none_or(|g| &t.group == g))
            .map(|t| AskType {
                instances: t
                    .instances
                    .iter()
                    .filter(|h| namespace.as_ref().is_none_or(|ns| &h.hit.namespace == ns))
                    .filter(|h| labels.iter().all(|(k, v)| h.hit.labels.get(k) == Some(v)))
                    .filter(|h| {
                        health.is_none_or(|want| {
                            h.hit.health.as_ref().is_some_and(|x| want.admits(x.status))
                        })
                    })
                    .take(limit)
                    .map(|h| HitLine {
                        owns: h.owns.clone(),
                        ..HitLine::from_hit(&h.hit, true)
                    })
                    .collect(),
                id: t.id,
                kind: t.kind,
                api_group: t.group,
                score: round(t.score),
                why: shorten(&t.reason, 160),
            })
            .collect();
        let asked_health: Vec<&str> = answer.health.iter().map(|h| h.as_str()).collect();
        let note = if types.is_empty() && !asked_health.is_empty() {
            Some(format!(
                "nothing {} answers the question",
                asked_health.join(" or ")
            ))
        } else if types.is_empty() {
            Some(
                "no resource type matches: rephrase with what the thing does (\"database\", \
                 \"certificates\"), or use search_resources with a name or kind"
                    .to_string(),
            )
        } else if answer.none_with_health {
            Some(format!(
                "none of the answers is {}: these are the answers of any health, each with its own",
                asked_health.join(" or ")
            ))
        } else {
            None
        };
        Ok(Json(AskAnswerLines {
            question,
            types,
            note,
        }))
    }

    #[tool(
        description = "Read one object live from the cluster: a spec summary, status, \
conditions, recent events, its owner chain (ReplicaSet, Deployment, operator resource) and \
its health in the index's words (Current, InProgress, Failed, Terminating or Unknown, with \
the same reason search hits carry; the conditions and events are the evidence). Give the id from \
a search hit, or kind, name and namespace. Secrets' values and credential-like annotations \
are never returned. Needs cluster access, which cw run and cw mcp --kubeconfig have.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_resource(
        &self,
        Parameters(p): Parameters<GetResourceParams>,
    ) -> Result<Json<ResourceDetails>, String> {
        let Some(live) = self.cluster.live.clone() else {
            return Err(format!(
                "this cw server has no access to the cluster, so it cannot read objects live. \
                 {} The index still answers search_resources and ask.",
                self.cluster.no_access_hint
            ));
        };
        let target = self.resolve(&p).await?;
        let id = ResourceId::new(
            target.namespace.as_deref(),
            &target.api_version,
            &target.kind,
            &target.name,
        );
        let object = live
            .get(&target)
            .await
            .map_err(|e| cluster_error(e, &target))?;
        let mut notes = Vec::new();
        let events = live.events(&target).await.unwrap_or_else(|e| {
            notes.push(format!("events could not be read: {e}"));
            vec![]
        });
        let mut details = summarise(id.as_str(), &object, &events);
        details.notes.extend(notes);
        details.owners = self.owner_chain(live.as_ref(), &object, &target).await;
        Ok(Json(details))
    }

    #[tool(
        description = "List the clusters this index knows, with how many objects and resource \
types each holds, its largest kinds, and whether get_resource can read it live. An index \
may hold many clusters; search_resources takes `cluster` to search one.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_clusters(&self) -> Result<Json<ClustersAnswer>, String> {
        let by_cluster = self
            .index
            .count(&CountBody {
                group_by: Some(sync_model::search::GroupBy::Cluster),
                ..Default::default()
            })
            .await
            .map_err(index_error)?;
        let types = self
            .index
            .count(&CountBody {
                request: SearchRequest {
                    collection: Collection::Capabilities,
                    ..Default::default()
                },
                group_by: None,
            })
            .await
            .map_err(index_error)?;
        let mut clusters = Vec::new();
        for group in by_cluster.groups {
            let kinds = self
                .index
                .count(&CountBody {
                    request: SearchRequest {
                        cluster: Some(group.key.clone()),
                        ..Default::default()
                    },
                    group_by: Some(sync_model::search::GroupBy::Kind),
                })
                .await
                .map_err(index_error)?;
            clusters.push(ClusterLine {
                live_access: self.cluster.live.is_some() && group.key == self.cluster.name,
                name: group.key,
                objects: group.count,
                types: types.total,
                kinds: kinds.groups.into_iter().take(10).map(Into::into).collect(),
            });
        }
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Json(ClustersAnswer {
            clusters,
            note: "Each cluster's objects are those its watcher has synced; search_resources \
                   takes `cluster` to search one. `types` counts the resource types of the \
                   whole fleet."
                .into(),
        }))
    }
}

#[prompt_router]
impl CwMcp {
    /// Investigate something in the cluster: find what runs it and whether it is healthy.
    #[prompt(
        name = "investigate",
        description = "Find what runs something in the cluster (\"databases\", \"the checkout \
service\") and whether it is healthy, using cw's tools step by step."
    )]
    async fn investigate(
        &self,
        Parameters(args): Parameters<InvestigateArgs>,
    ) -> Vec<PromptMessage> {
        let subject = args.subject.trim();
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "Find what runs {subject} in the cluster and whether it is healthy. Use cw's \
tools in small steps:\n\
1. ask with a question about {subject} to find the resource types that provide it and their \
instances (search_capabilities if you only need the types).\n\
2. If a type may have many instances, size it first with search_resources mode=count or \
mode=group_by (groupBy namespace), then list with filters; follow nextCursor only if needed.\n\
3. For each candidate instance (at most five), call get_resource with its id and read its \
health, conditions, recent events and owners.\n\
4. Answer with a short table: kind, namespace/name, health, and the evidence (condition or \
event) for anything not healthy. Say what you could not check."
            ),
        )]
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for CwMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
        .with_instructions(INSTRUCTIONS)
    }
}

impl CwMcp {
    /// One page of a ranked search (or of a filtered listing), cut to the answer size.
    async fn list_page(
        &self,
        mut request: SearchRequest,
        p: &SearchResourcesParams,
    ) -> Result<SearchAnswer, String> {
        if request.query.is_empty()
            && request.kind.is_none()
            && request.api_group.is_none()
            && request.namespace.is_none()
            && request.labels.is_empty()
            && request.health.is_none()
        {
            return Err(
                "give a query or at least one filter (kind, apiGroup, namespace, \
                        labels). To see what the index holds, call search_resources with \
                        mode=group_by and groupBy=kind."
                    .into(),
            );
        }
        parse_labels(&request.labels)?;
        let page = bounded(p.limit, DEFAULT_PAGE, MAX_PAGE, "limit")?;
        let group = request.api_group.clone().unwrap_or_default();
        let labels = request.labels.join(",");
        let mode = format!("{:?}", request.mode);
        let health = request.health.map(|h| h.as_str()).unwrap_or_default();
        let print = cursor::fingerprint(&[
            &request.query,
            request.kind.as_deref().unwrap_or_default(),
            &group,
            request.namespace.as_deref().unwrap_or_default(),
            &labels,
            &mode,
            health,
        ]);
        let offset = match non_empty(p.cursor.as_deref()) {
            Some(c) => cursor::decode(&c, print)?,
            None => 0,
        };
        if offset >= RANKING_WINDOW {
            return Err(format!(
                "pages end at the first {RANKING_WINDOW} hits: narrow the search with filters \
                 or use mode=count"
            ));
        }
        // One hit more than the page tells whether another page exists.
        let want = (offset + page + 1).min(RANKING_WINDOW);
        request.limit = Some(want);
        let hits = self.index.search(&request).await.map_err(index_error)?;
        let ranked = !request.query.is_empty();
        let mut results: Vec<HitLine> = hits
            .iter()
            .skip(offset)
            .take(page)
            .map(|h| HitLine::from_hit(h, ranked))
            .collect();
        let mut more = hits.len() > offset + results.len();
        let mut answer = SearchAnswer {
            mode: "list".into(),
            ..Default::default()
        };
        // Cut to the answer size: hits at the end go to the next page.
        loop {
            answer.results = results.clone();
            answer.next_cursor = more.then(|| cursor::encode(offset + results.len(), print));
            let size = serde_json::to_string(&answer).map_or(0, |s| s.len());
            if size <= MAX_ANSWER_BYTES || results.len() <= 1 {
                break;
            }
            results.truncate(results.len() / 2);
            more = true;
        }
        let end = offset + answer.results.len();
        answer.note = if answer.results.is_empty() {
            Some(if offset > 0 {
                "no more hits".to_string()
            } else {
                "nothing matches: loosen the filters, or check spellings with \
                 search_resources mode=group_by"
                    .to_string()
            })
        } else if !more && end >= RANKING_WINDOW {
            Some(format!(
                "pages end at the first {RANKING_WINDOW} hits: narrow the filters or use mode=count"
            ))
        } else if more {
            Some(format!(
                "hits {}-{end} shown; use mode=count for the total",
                offset + 1
            ))
        } else {
            None
        };
        if end >= RANKING_WINDOW {
            answer.next_cursor = None;
        }
        Ok(answer)
    }

    /// The object `p` names: its id, or kind and name (the apiVersion looked up in the index).
    async fn resolve(&self, p: &GetResourceParams) -> Result<ObjectRef, String> {
        if let Some(id) = non_empty(p.id.as_deref()) {
            let id = ResourceId::from_raw(id);
            let parts = id.parts().map_err(|e| {
                format!(
                    "id {:?} is not an index id ({e}): pass the id of a search hit unchanged, \
                     or kind, name and namespace",
                    id.as_str()
                )
            })?;
            return Ok(ObjectRef {
                api_version: parts.api_version.to_string(),
                kind: parts.kind.to_string(),
                namespace: (parts.namespace != sync_model::CLUSTER_SCOPE)
                    .then(|| parts.namespace.to_string()),
                name: parts.name.to_string(),
            });
        }
        let (Some(kind), Some(name)) = (non_empty(p.kind.as_deref()), non_empty(p.name.as_deref()))
        else {
            return Err(
                "give the id of a search hit, or kind and name (and namespace for \
                        namespaced objects)"
                    .into(),
            );
        };
        let namespace = non_empty(p.namespace.as_deref());
        if let Some(api_version) = non_empty(p.api_version.as_deref()) {
            return Ok(ObjectRef {
                api_version,
                kind,
                namespace,
                name,
            });
        }
        let hits = self
            .index
            .search(&SearchRequest {
                query: name.clone(),
                kind: Some(kind.clone()),
                namespace: namespace.clone(),
                mode: SearchMode::Keyword,
                limit: Some(20),
                ..Default::default()
            })
            .await
            .map_err(index_error)?;
        let Some(hit) = hits.iter().find(|h| h.name == name) else {
            // Not indexed (Secrets are left out by default, or it is newer than the index):
            // the cluster's discovery names the kind's version.
            if let Some(live) = &self.cluster.live {
                if let Ok(Some(api_version)) = live.api_version_of(&kind).await {
                    return Ok(ObjectRef {
                        api_version,
                        kind,
                        namespace,
                        name,
                    });
                }
            }
            return Err(format!(
                "the index has no {kind} named {name}{}: check the spelling with \
                 search_resources, or give apiVersion to read it from the cluster anyway",
                namespace
                    .as_deref()
                    .map(|ns| format!(" in namespace {ns}"))
                    .unwrap_or_default()
            ));
        };
        let id = ResourceId::from_raw(hit.id.clone());
        let parts = id
            .parts()
            .map_err(|e| format!("the index holds a malformed id {:?}: {e}", hit.id))?;
        Ok(ObjectRef {
            api_version: parts.api_version.to_string(),
            kind,
            namespace: (parts.namespace != sync_model::CLUSTER_SCOPE)
                .then(|| parts.namespace.to_string()),
            name,
        })
    }

    /// Owners above `object`, nearest first, as `Kind namespace/name`; an owner that
    /// cannot be read ends the chain with a note of why.
    async fn owner_chain(
        &self,
        live: &dyn LiveCluster,
        object: &serde_json::Value,
        target: &ObjectRef,
    ) -> Vec<String> {
        let mut chain = Vec::new();
        let mut current = object.clone();
        for _ in 0..MAX_OWNERS {
            let Some((api_version, kind, name)) = owner_of(&current) else {
                break;
            };
            // Owners live in the object's namespace, or are cluster-scoped; try the former.
            let owner = ObjectRef {
                api_version,
                kind,
                namespace: target.namespace.clone(),
                name,
            };
            chain.push(owner.display());
            match live.get(&owner).await {
                Ok(next) => current = next,
                Err(ClusterError::NotFound(_)) if owner.namespace.is_some() => {
                    let cluster_scoped = ObjectRef {
                        namespace: None,
                        ..owner
                    };
                    match live.get(&cluster_scoped).await {
                        Ok(next) => {
                            chain.pop();
                            chain.push(cluster_scoped.display());
                            current = next;
                        }
                        Err(e) => {
                            chain.push(format!("(stopped: {e})"));
                            break;
                        }
                    }
                }
                Err(e) => {
                    chain.push(format!("(stopped: {e})"));
                    break;
                }
            }
        }
        chain
    }
}

/// `value` within 1..=max, `default` when absent; an error that names the range otherwise.
fn bounded(value: Option<u32>, default: usize, max: usize, name: &str) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(0) => Err(format!("{name} must be at least 1")),
        Some(n) if n as usize > max => Err(format!(
            "{name} must be at most {max}: page with nextCursor instead"
        )),
        Some(n) => Ok(n as usize),
    }
}

fn parse_labels(labels: &[String]) -> Result<Vec<(String, String)>, String> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!(
                "label filter {l:?} must be key=value, e.g. \"app.kubernetes.io/name=postgres\""
            )),
        })
        .collect()
}

fn index_error(e: IndexError) -> String {
    match e {
        IndexError::BadRequest(m) => format!("the search was refused: {m}"),
        IndexError::Unavailable(m) => format!(
            "the index cannot answer now ({m}): try again shortly; if it persists, check that \
             cw serve or cw run is running and reachable"
        ),
        IndexError::Failed(m) => format!("the index failed: {m}"),
    }
}

fn cluster_error(e: ClusterError, target: &ObjectRef) -> String {
    match e {
        ClusterError::NotFound(_) => format!(
            "{} is not in the cluster (it may have been deleted since it was indexed): search \
             again to find its current name",
            target.display()
        ),
        ClusterError::UnknownKind(k) => format!(
            "the cluster serves no kind {k}: check kind and apiVersion (search hits' ids carry both)"
        ),
        other => other.to_string(),
    }
}
