"""recbole-hetcomp: HetComp (Kang et al., WWW 2023) and its baselines as a RecBole plugin.

Entry points: ``recbole_hetcomp.quick_start.run_recbole_hetcomp`` (one run, any model) and
``run`` (the same on RecBole's distributed engine); ``recbole_hetcomp.utils.get_model`` /
``get_trainer`` (plugin first, then RecBole). Kept import-light on purpose: importing the
package does not import RecBole.
"""
