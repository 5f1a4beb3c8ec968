//! The split of a model at a layer into a prefix and a suffix graph.
use super::*;

impl OnnxModel {
    /// Cut at `layer`. The skip tensors of a residual block around the cut cross too.
    pub fn split(&self, layer: &str) -> Result<Split> {
        let g = self.graph()?;
        let candidates = self.candidates();
        if !candidates.iter().any(|c| c.tensor == layer) {
            return Err(self.not_a_candidate(g, layer));
        }
        let producer = producers(g);
        let node_inputs: Vec<Vec<String>> = g.node.iter().map(node_inputs).collect();
        let inits = initializer_names(g);

        // A layer no output depends on gets all-zero importances: refused, with the reason.
        let mut reached: HashSet<&str> = HashSet::from([layer]);
        let mut grew = true;
        while grew {
            grew = false;
            for (i, n) in g.node.iter().enumerate() {
                if node_inputs[i].iter().any(|t| reached.contains(t.as_str())) {
                    for o in n.output.iter().filter(|o| !o.is_empty()) {
                        grew |= reached.insert(o.as_str());
                    }
                }
            }
        }
        if !g.output.iter().any(|o| reached.contains(o.name.as_str())) {
            return Err(model_err(format!("no model output depends on layer '{layer}'")));
        }

        // The prefix: exactly the ancestors of the layer.
        let mut in_prefix = vec![false; g.node.len()];
        let mut stack = vec![producer[layer]];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut in_prefix[i], true) {
                continue;
            }
            stack.extend(node_inputs[i].iter().filter_map(|t| producer.get(t.as_str()).copied()));
        }

        // Nodes that depend on initializers alone (shape constants, ...): the suffix gets its own copy
        // rather than receiving their outputs as inputs.
        let mut constant = vec![false; g.node.len()];
        let mut constant_tensors: HashSet<&str> = inits.clone();
        for (i, n) in g.node.iter().enumerate() {
            let pure = !n.op_type.starts_with("Random") && n.op_type != "Multinomial" && n.op_type != "Bernoulli";
            if pure && node_inputs[i].iter().all(|t| constant_tensors.contains(t.as_str())) {
                constant[i] = true;
                constant_tensors.extend(n.output.iter().map(|s| s.as_str()));
            }
        }

        if constant[producer[layer]] {
            return Err(model_err(format!("layer '{layer}' does not depend on the model input (it is computed from weights alone)")));
        }

        // Walk what the suffix needs: prefix tensors cross, constant prefix nodes are copied.
        let mut copied = vec![false; g.node.len()];
        let mut crossing: Vec<String> = vec![layer.to_string()];
        let mut crossing_set: HashSet<String> = crossing.iter().cloned().collect();
        let graph_inputs: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
        let mut needed: Vec<&str> = Vec::new();
        for (i, ins) in node_inputs.iter().enumerate() {
            if !in_prefix[i] {
                needed.extend(ins.iter().map(|s| s.as_str()));
            }
        }
        needed.extend(g.output.iter().map(|o| o.name.as_str()));
        let mut k = 0;
        while k < needed.len() {
            let t = needed[k];
            k += 1;
            match producer.get(t) {
                Some(&p) if in_prefix[p] => {
                    if constant[p] {
                        if !std::mem::replace(&mut copied[p], true) {
                            needed.extend(node_inputs[p].iter().map(|s| s.as_str()));
                        }
                    } else if crossing_set.insert(t.to_string()) {
                        crossing.push(t.to_string());
                    }
                }
                Some(_) => {}
                None => {
                    if !inits.contains(t) && graph_inputs.contains(t) && crossing_set.insert(t.to_string()) {
                        crossing.push(t.to_string());
                    }
                }
            }
        }
        // The suffix needs every crossing tensor before the first node that uses it; keep the layer first
        // and the rest in order of first use (already so by construction).

        let types = infer_types(g);
        let crossing_vi: Vec<ValueInfoProto> = crossing
            .iter()
            .map(|t| match g.input.iter().find(|v| &v.name == t) {
                Some(v) => v.clone(),
                None => {
                    let ty = types.get(t.as_str()).copied().unwrap_or_default();
                    with_open_dims(tensor_value_info(t, ty.elem.unwrap_or(FLOAT)), ty.rank)
                }
            })
            .collect();

        let prefix_nodes: Vec<usize> = (0..g.node.len()).filter(|&i| in_prefix[i]).collect();
        let suffix_nodes: Vec<usize> = (0..g.node.len()).filter(|&i| !in_prefix[i] || copied[i]).collect();

        // Prefix graph.
        let prefix = {
            let used = used_tensors(&prefix_nodes, &node_inputs);
            let produced = produced_tensors(g, &prefix_nodes);
            let mut inputs: Vec<ValueInfoProto> = Vec::new();
            for v in &g.input {
                let is_init = inits.contains(v.name.as_str());
                if !is_init || used.contains(v.name.as_str()) {
                    inputs.push(v.clone());
                }
            }
            let outputs_set: HashSet<&str> = crossing.iter().map(|s| s.as_str()).collect();
            let internal = |n: &str| (produced.contains(n) || used.contains(n)) && !outputs_set.contains(n);
            self.side(g, &prefix_nodes, &used, inputs, crossing_vi.clone(), internal)
        };

        // Suffix graph.
        let suffix = {
            let mut used = used_tensors(&suffix_nodes, &node_inputs);
            used.extend(g.output.iter().map(|o| o.name.as_str()));
            let produced = produced_tensors(g, &suffix_nodes);
            let mut inputs = crossing_vi;
            for v in &g.input {
                if inits.contains(v.name.as_str()) && used.contains(v.name.as_str()) {
                    inputs.push(v.clone());
                }
            }
            let boundary: HashSet<&str> =
                crossing.iter().map(|s| s.as_str()).chain(g.output.iter().map(|o| o.name.as_str())).collect();
            let internal = |n: &str| (produced.contains(n) || used.contains(n)) && !boundary.contains(n);
            self.side(g, &suffix_nodes, &used, inputs, g.output.to_vec(), internal)
        };

        Ok(Split { prefix, suffix, crossing })
    }

    /// One side of a split: everything of the model except the graph's nodes, initializers,
    /// inputs, outputs and value_info, which come from the arguments.
    pub(super) fn side(
        &self,
        g: &GraphProto,
        nodes: &[usize],
        used: &HashSet<&str>,
        inputs: Vec<ValueInfoProto>,
        outputs: Vec<ValueInfoProto>,
        internal: impl Fn(&str) -> bool,
    ) -> OnnxModel {
        let mut graph = GraphProto {
            name: g.name.clone(),
            doc_string: g.doc_string.clone(),
            quantization_annotation: g.quantization_annotation.clone(),
            metadata_props: g.metadata_props.clone(),
            special_fields: g.special_fields.clone(),
            ..Default::default()
        };
        graph.node = nodes.iter().map(|&i| g.node[i].clone()).collect();
        graph.initializer = g.initializer.iter().filter(|t| used.contains(t.name.as_str())).cloned().collect();
        graph.sparse_initializer = g
            .sparse_initializer
            .iter()
            .filter(|s| s.values.as_ref().is_some_and(|v| used.contains(v.name.as_str())))
            .cloned()
            .collect();
        graph.input = inputs;
        graph.output = outputs;
        graph.value_info = g.value_info.iter().filter(|v| internal(&v.name)).cloned().collect();
        let mut proto = self.proto.clone_without_graph();
        proto.graph = MessageField::some(graph);
        OnnxModel { proto }
    }

    pub(super) fn not_a_candidate(&self, g: &GraphProto, layer: &str) -> Error {
        let summary = self.candidate_summary();
        if g.input.iter().any(|v| v.name == layer) {
            return Error::invalid(format!("'{layer}' is a model input, not a layer (candidate layers: {summary})"));
        }
        if g.output.iter().any(|v| v.name == layer) {
            return Error::invalid(format!("'{layer}' is a model output, not a layer (candidate layers: {summary})"));
        }
        if g.initializer.iter().any(|t| t.name == layer) {
            return Error::invalid(format!("'{layer}' is a weight, not a layer (candidate layers: {summary})"));
        }
        if let Some(n) = g.node.iter().find(|n| n.output.iter().any(|o| o == layer)) {
            return Error::invalid(format!(
                "'{layer}' (output of {}) is not a candidate layer: it cannot be a 4-D float feature map \
                 (candidate layers: {summary})",
                n.op_type
            ));
        }
        self.unknown_layer(layer)
    }
}
