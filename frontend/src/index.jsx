// The page `trainkit form` serves. It renders the architecture's config.jsonschema and the
// platform's export.jsonschema the way the platform's frontend does: @rjsf/core 4 with the
// material-ui theme (imported as the platform imports it, `@rjsf/material-ui/v5`), no uiSchema,
// liveValidate + liveOmit + omitExtraData, controlled formData starting from the backend's
// JSONSchemaDefault values (the server sends them). "Save" submits both forms through rjsf, so
// a value rjsf rejects is never posted, and the server validates again before writing.
import React, { useEffect, useRef, useState } from "react";
import ReactDOM from "react-dom";
import Form from "@rjsf/material-ui/v5";
import Alert from "@mui/material/Alert";
import Box from "@mui/material/Box";
import Button from "@mui/material/Button";
import FormControlLabel from "@mui/material/FormControlLabel";
import Grid from "@mui/material/Grid";
import Link from "@mui/material/Link";
import Paper from "@mui/material/Paper";
import Switch from "@mui/material/Switch";
import Typography from "@mui/material/Typography";

const DOCS_KEYWORD = "Documentation:";

// Descriptions as the platform shows them: subtitle2 text, a trailing "Documentation: URL" as a link.
function Description({ id, description }) {
  if (!description) return null;
  let text = description;
  let url;
  if (typeof description === "string" && description.includes(DOCS_KEYWORD)) {
    [text, url] = description.split(DOCS_KEYWORD);
  }
  return (
    <Typography id={id} variant="subtitle2" style={{ marginTop: "5px" }}>
      {text}
      {url && (
        <>
          {DOCS_KEYWORD}{" "}
          <Link href={url} target="_blank" rel="noreferrer">
            {url}
          </Link>
        </>
      )}
    </Typography>
  );
}

const FIELDS = { DescriptionField: Description };

// Observable state for people (the JSON panes) and for the browser tests (window.trainkitForm).
const probe = (window.trainkitForm = { ready: false, values: {}, saves: 0, lastSave: null });

function submitForm(ref, pending, key) {
  return new Promise((resolve) => {
    pending.current[key] = resolve;
    // rjsf 4's own submit() dispatches a non-bubbling event that React 17's root listener
    // never sees; a native requestSubmit() goes through rjsf's onSubmit (validation included).
    ref.current.formElement.requestSubmit();
  });
}

function App() {
  const [meta, setMeta] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [train, setTrain] = useState(undefined);
  const [exp, setExp] = useState(undefined);
  const [exportEnabled, setExportEnabled] = useState(true);
  const [status, setStatus] = useState(null);
  const trainRef = useRef(null);
  const exportRef = useRef(null);
  const pending = useRef({});

  useEffect(() => {
    fetch("api/forms")
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((data) => {
        setMeta(data);
        setTrain(data.train.values);
        setExp(data.export.values);
      })
      .catch((e) => setLoadError(String(e)));
  }, []);

  // rjsf's own state: what the form holds (after its default filling), not just our copy.
  probe.rjsfState = () => ({
    train: trainRef.current && trainRef.current.state.formData,
    export: exportRef.current && exportRef.current.state.formData,
  });

  useEffect(() => {
    probe.values = { train, export: exp };
    if (meta) probe.ready = true;
    if (meta) document.body.dataset.ready = "true";
  }, [meta, train, exp]);

  const settle = (key, value) => {
    const resolve = pending.current[key];
    delete pending.current[key];
    if (resolve) resolve(value);
  };

  const save = async () => {
    setStatus({ severity: "info", text: "Saving..." });
    const trainResult = await submitForm(trainRef, pending, "train");
    const exportResult = exportEnabled ? await submitForm(exportRef, pending, "export") : { ok: true, formData: null };
    if (!trainResult.ok || !exportResult.ok) {
      const which = [!trainResult.ok && "train", !exportResult.ok && "export"].filter(Boolean).join(" and ");
      setStatus({ severity: "error", text: `Not saved: the ${which} form has errors (shown above).` });
      probe.lastSave = { ok: false, form: which };
      return;
    }
    const body = JSON.stringify({ train: trainResult.formData, export: exportResult.formData });
    try {
      const response = await fetch("api/save", { method: "POST", headers: { "Content-Type": "application/json" }, body });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
      setStatus({ severity: "success", text: `Saved ${answer.written.join(", ")}` });
      probe.saves += 1;
      probe.lastSave = { ok: true, ...answer };
    } catch (e) {
      setStatus({ severity: "error", text: `Not saved: ${e.message}` });
      probe.lastSave = { ok: false, error: e.message };
    }
  };

  if (loadError) return <Alert severity="error">Could not load the forms: {loadError}</Alert>;
  if (!meta) return <Typography sx={{ m: 2 }}>Loading...</Typography>;

  const common = { liveOmit: true, omitExtraData: true, liveValidate: true, fields: FIELDS };
  return (
    <Box sx={{ p: 2 }}>
      <Typography variant="h5" component="h1">
        {meta.title}
      </Typography>
      <Typography variant="body2" color="text.secondary" sx={{ mb: 2 }}>
        {meta.subtitle}
      </Typography>
      <Grid container spacing={2}>
        <Grid item xs={12} md={7} id="train-form">
          <Paper sx={{ p: 2 }}>
            <Form
              {...common}
              ref={trainRef}
              idPrefix="root"
              schema={meta.train.schema}
              formData={train}
              onChange={(form) => setTrain(form.formData)}
              onSubmit={(form) => settle("train", { ok: true, formData: form.formData })}
              onError={(errors) => settle("train", { ok: false, errors })}
            >
              <></>
            </Form>
          </Paper>
        </Grid>
        <Grid item xs={12} md={5} id="export-form">
          <Paper sx={{ p: 2 }}>
            <Typography variant="h6">
              ONNX Export Configuration
              <Switch
                id="export-enabled"
                checked={exportEnabled}
                onChange={() => setExportEnabled(!exportEnabled)}
                inputProps={{ "aria-label": "ONNX export enabled" }}
              />
            </Typography>
            <Form
              {...common}
              ref={exportRef}
              idPrefix="export"
              disabled={!exportEnabled}
              schema={meta.export.schema}
              formData={exp}
              onChange={(form) => setExp(form.formData)}
              onSubmit={(form) => settle("export", { ok: true, formData: form.formData })}
              onError={(errors) => settle("export", { ok: false, errors })}
            >
              <></>
            </Form>
          </Paper>
        </Grid>
        <Grid item xs={12}>
          <Button id="save" variant="contained" onClick={save}>
            Save
          </Button>
          <Typography component="span" variant="body2" sx={{ ml: 2 }}>
            writes {meta.files.join(" and ")} into {meta.out}
          </Typography>
          {status && (
            <Alert id="status" severity={status.severity} sx={{ mt: 2 }}>
              {status.text}
            </Alert>
          )}
        </Grid>
        <Grid item xs={12} md={7}>
          <Typography variant="subtitle2">train_config.json (live)</Typography>
          <Box component="pre" id="train-values" sx={{ fontSize: 12, bgcolor: "grey.100", p: 1, overflow: "auto" }}>
            {JSON.stringify(train, null, 2)}
          </Box>
        </Grid>
        <Grid item xs={12} md={5}>
          <Typography variant="subtitle2">export_config.json (live)</Typography>
          <Box component="pre" id="export-values" sx={{ fontSize: 12, bgcolor: "grey.100", p: 1, overflow: "auto" }}>
            {exportEnabled ? JSON.stringify(exp, null, 2) : "{} (export disabled)"}
          </Box>
        </Grid>
      </Grid>
    </Box>
  );
}

ReactDOM.render(<App />, document.getElementById("root"));
